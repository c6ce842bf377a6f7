"""A picture of upload kinds and of what the model sees of them: for each kind, a few uploads
(test split) and, under each, the 28x28 digit the gateway's preprocessing makes of it (or a
red cross where it refuses).

    python -m bench.recognition_pictures --data mnist.npz --out docs/recognition-kinds.png \\
        [--kinds hard-shadow note-on-desk ...] [--per-kind 6]
"""

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.recognition_sets import LEGIBLE, legible_uploads, mnist_split
from gateway.config import DEFAULT_MAX_IMAGE_PIXELS
from gateway.errors import NoDigitFound
from gateway.preprocessing import preprocess_upload

TILE = 128
GAP = 6
PAPER_KINDS = ["hard-shadow", "note-on-desk", "stray-marks", "boxed-digit", "ruled-paper"]


def upload_tile(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data)).convert("RGBA")
    image.thumbnail((TILE, TILE))
    tile = Image.new("RGB", (TILE, TILE), (250, 250, 250))
    tile.paste(image, ((TILE - image.width) // 2, (TILE - image.height) // 2), image)
    return tile


def seen_tile(data: bytes) -> Image.Image:
    try:
        digit = preprocess_upload(data, DEFAULT_MAX_IMAGE_PIXELS)
    except NoDigitFound:
        tile = Image.new("RGB", (TILE, TILE), (0, 0, 0))
        ImageDraw.Draw(tile).line([(20, 20), (108, 108)], fill=(220, 40, 40), width=6)
        ImageDraw.Draw(tile).line([(20, 108), (108, 20)], fill=(220, 40, 40), width=6)
        return tile
    pixels = (np.clip(digit, 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(pixels).resize((TILE, TILE), Image.Resampling.NEAREST).convert("RGB")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.recognition_pictures", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kinds", nargs="+", default=PAPER_KINDS, choices=list(LEGIBLE))
    parser.add_argument("--per-kind", type=int, default=6)
    args = parser.parse_args()
    images, labels = mnist_split(args.data, "test")
    uploads = [
        u for u in legible_uploads(images, labels, args.per_kind, 1000) if u.kind in args.kinds
    ]
    label_width = 150
    width = label_width + args.per_kind * (TILE + GAP)
    sheet = Image.new("RGB", (width, len(args.kinds) * (2 * TILE + 3 * GAP)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for row, kind in enumerate(args.kinds):
        top = row * (2 * TILE + 3 * GAP)
        draw.text((6, top + TILE - 6), kind, fill=(0, 0, 0))
        draw.text((6, top + 2 * TILE - 6), "what the model saw", fill=(90, 90, 90))
        for column, upload in enumerate(u for u in uploads if u.kind == kind):
            left = label_width + column * (TILE + GAP)
            sheet.paste(upload_tile(upload.data), (left, top))
            sheet.paste(seen_tile(upload.data), (left, top + TILE + GAP))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
