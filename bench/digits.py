"""Realistic uploads for the benchmarks, made in code: canvas drawings and photos of ink on
paper (the drawing itself is tests/digit_images.py's)."""

import numpy as np
from PIL import Image

from bench.loadgen import Upload
from tests.digit_images import MARKER_SEVEN, draw_marker_stroke, encode


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
