"""Uploads shared by the tests that go through the gateway's routes."""

from tests.digit_images import draw_digit, encode

# A clear, dark-on-light 5: every route test's default upload.
PNG = encode(draw_digit(5, size=120, stroke=3, dark_on_light=True))


def upload(
    data: bytes = PNG, name: str = "digit.png", content_type: str = "image/png"
) -> dict[str, tuple[str, bytes, str]]:
    """The `files=` of a POST /predict: the image as field 'file'."""
    return {"file": (name, data, content_type)}
