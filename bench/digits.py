"""Realistic inputs for the benchmarks, made in code: canvas drawings and photos of ink on
paper as uploads, and the normalised tensors the gateway makes of them (the drawing itself
is tests/digit_images.py's)."""

import numpy as np
import orjson
from PIL import Image

from gateway.config import DEFAULT_MAX_IMAGE_PIXELS
from gateway.preprocessing import preprocess_upload
from tests.digit_images import MARKER_SEVEN, draw_marker_stroke, encode

Upload = tuple[str, bytes, str]  # filename, content, content type
BOUNDARY = "benchboundary7d1c"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"  # the Content-Type of `multipart`


def uploads() -> list[Upload]:
    """Sixteen uploads: 280x280 PNG drawings and 640x480 JPEG photos, alternately."""
    rng = np.random.default_rng(0)
    files = []
    for index in range(16):
        # Each a 7 whose foot lands a little further right than the last one's.
        (foot_x, foot_y) = MARKER_SEVEN[2]
        seven = [*MARKER_SEVEN[:2], (foot_x + 0.02 * (index % 5), foot_y)]
        if index % 2 == 0:
            canvas = draw_marker_stroke(Image.new("L", (280, 280), 255), seven, ink=0, width=16)
            files.append((f"canvas{index}.png", encode(canvas), "image/png"))
        else:
            paper = np.clip(rng.normal(205, 6, (480, 640)), 0, 255).astype(np.uint8)
            photo = draw_marker_stroke(
                Image.fromarray(paper), seven, ink=40, width=22, box=(160, 60, 320, 360)
            )
            jpeg = encode(photo.convert("RGB"), "JPEG", quality=85)
            files.append((f"photo{index}.jpg", jpeg, "image/jpeg"))
    return files


def normalised_bodies(files: list[Upload]) -> list[bytes]:
    """`:predict` bodies (row format, one instance) of the uploads as the gateway sends them."""
    return [
        orjson.dumps(
            {"instances": preprocess_upload(data, DEFAULT_MAX_IMAGE_PIXELS)[None, :, :, None]},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        for _, data, _ in files
    ]


def multipart(files: list[bytes], field: str) -> bytes:
    """A multipart/form-data body with each file as a part called `field`."""
    parts = [
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="digit{index}.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + data
        + b"\r\n"
        for index, data in enumerate(files)
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
