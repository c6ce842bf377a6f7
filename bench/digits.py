"""Realistic inputs for the benchmarks, made in code: canvas drawings and photos of ink on
paper as uploads, and the normalised tensors the gateway makes of them."""

import io

import numpy as np
import orjson
from PIL import Image, ImageDraw

from gateway.config import DEFAULT_MAX_IMAGE_PIXELS
from gateway.preprocessing import preprocess_upload

Upload = tuple[str, bytes, str]  # filename, content, content type


def uploads() -> list[Upload]:
    """Sixteen uploads: 280x280 PNG drawings and 640x480 JPEG photos, alternately."""
    rng = np.random.default_rng(0)
    files = []
    for index in range(16):
        digit_stroke = [(0.3, 0.25), (0.7, 0.25), (0.45 + 0.02 * (index % 5), 0.8)]
        if index % 2 == 0:
            image = Image.new("L", (280, 280), 255)
            points = [(x * 280, y * 280) for x, y in digit_stroke]
            ImageDraw.Draw(image).line(points, fill=0, width=16, joint="curve")
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            files.append((f"canvas{index}.png", buffer.getvalue(), "image/png"))
        else:
            paper = np.clip(rng.normal(205, 6, (480, 640)), 0, 255).astype(np.uint8)
            image = Image.fromarray(paper)
            points = [(160 + x * 320, 60 + y * 360) for x, y in digit_stroke]
            ImageDraw.Draw(image).line(points, fill=40, width=22, joint="curve")
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=85)
            files.append((f"photo{index}.jpg", buffer.getvalue(), "image/jpeg"))
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
