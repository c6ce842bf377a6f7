"""Uploads for the benchmarks' load: drawings and photos of a 7, made in code.

The tests' own drawings (digits, photos of paper, images that are not one digit) are in
tests/drawings.py.
"""

import io

import numpy as np
from PIL import Image, ImageDraw

Upload = tuple[str, bytes, str]  # filename, content, content type


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def uploads() -> list[Upload]:
    """Sixteen uploads: 280x280 PNG drawings and 640x480 JPEG photos, alternately, each a 7 in
    one marker stroke (round joints) whose foot lands a little further right than the last one's."""
    rng = np.random.default_rng(0)
    files = []
    for index in range(16):
        seven = [(0.3, 0.25), (0.7, 0.25), (0.45 + 0.02 * (index % 5), 0.8)]  # (x, y) fractions
        if index % 2 == 0:  # across the whole canvas
            canvas = Image.new("L", (280, 280), 255)
            stroke = [(x * 280, y * 280) for x, y in seven]
            ImageDraw.Draw(canvas).line(stroke, fill=0, width=16, joint="curve")
            files.append((f"canvas{index}.png", encode(canvas), "image/png"))
        else:  # in a 320x360 box in the middle of the page
            paper = np.clip(rng.normal(205, 6, (480, 640)), 0, 255).astype(np.uint8)
            photo = Image.fromarray(paper)
            stroke = [(160 + x * 320, 60 + y * 360) for x, y in seven]
            ImageDraw.Draw(photo).line(stroke, fill=40, width=22, joint="curve")
            jpeg = encode(photo.convert("RGB"), "JPEG", quality=85)
            files.append((f"photo{index}.jpg", jpeg, "image/jpeg"))
    return files
