"""Median time of the gateway's preprocessing (decode + MNIST normalisation) per image.

    python -m bench.preprocess [--runs 300]

Runs in this one process and thread (one core); images are made in code.
"""

import argparse
import io
import os
import statistics
import sys
import time

from PIL import Image, ImageDraw

from gateway.config import DEFAULT_MAX_IMAGE_PIXELS
from gateway.preprocessing import preprocess_upload


def drawn_seven(size: tuple[int, int], stroke: int, dark_on_light: bool) -> Image.Image:
    ink, paper = (25, 240) if dark_on_light else (255, 0)
    image = Image.new("L", size, paper)
    width, height = size
    ImageDraw.Draw(image).line(
        [(width * 0.3, height * 0.25), (width * 0.7, height * 0.25), (width * 0.45, height * 0.8)],
        fill=ink,
        width=stroke,
        joint="curve",
    )
    return image


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buffer.getvalue()


CASES = {
    "28x28 PNG (MNIST-like)": lambda: encoded(drawn_seven((28, 28), 2, False), "PNG"),
    "280x280 PNG (canvas)": lambda: encoded(drawn_seven((280, 280), 18, True), "PNG"),
    "1024x768 JPEG (photo)": lambda: encoded(
        drawn_seven((1024, 768), 30, True).convert("RGB"), "JPEG"
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.preprocess", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    print(
        f"Gateway preprocessing, one thread ({os.cpu_count()} cores on the machine), "
        f"median of {args.runs} runs"
    )
    print(f"{'image':<26} {'bytes':>8} {'median ms':>10} {'p95 ms':>8}")
    for name, make in CASES.items():
        data = make()
        for _ in range(20):
            preprocess_upload(data, DEFAULT_MAX_IMAGE_PIXELS)
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            preprocess_upload(data, DEFAULT_MAX_IMAGE_PIXELS)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        print(
            f"{name:<26} {len(data):>8} {statistics.median(times):>10.3f} "
            f"{times[int(0.95 * len(times))]:>8.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
