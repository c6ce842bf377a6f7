"""Uploads and metric readings shared by the tests that go through the gateway's routes."""

from fastapi.testclient import TestClient

from bench.digits import draw_digit, encode

# A clear, dark-on-light 5: every route test's default upload.
PNG = encode(draw_digit(5, size=120, stroke=3, dark_on_light=True))


def upload(
    data: bytes = PNG, name: str = "digit.png", content_type: str = "image/png"
) -> dict[str, tuple[str, bytes, str]]:
    """The `files=` of a POST /predict: the image as field 'file'."""
    return {"file": (name, data, content_type)}


def errors_counted(client: TestClient) -> dict[str, float]:
    """gateway_errors_total by kind, as a scrape reads it."""
    counted: dict[str, float] = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("gateway_errors_total{"):
            labels, value = line.rsplit(" ", 1)
            counted[labels.split('kind="')[1].split('"')[0]] = float(value)
    return counted
