"""Median time of the gateway's preprocessing (decode + MNIST normalisation) per image.

    python -m bench.preprocess [--runs 300] [--before OTHER/gateway/preprocessing.py]

Runs in this one process and thread (one core); images are made in code. With --before,
another version of the preprocessing module (an older checkout's) is timed in the same run,
each image alternating between the two, and the ratio printed.
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gateway.config import DEFAULT_MAX_IMAGE_PIXELS
from gateway.preprocessing import preprocess_upload
from tests.digit_images import encode, marker_seven


def seven(size: tuple[int, int], stroke: int, dark_on_light: bool, fmt: str) -> bytes:
    """A marker 7 across the canvas, encoded as an upload (JPEG at quality 85)."""
    ink, paper = (25, 240) if dark_on_light else (255, 0)
    image = marker_seven(size, width=stroke, ink=ink, paper=paper)
    if fmt == "JPEG":
        return encode(image.convert("RGB"), fmt, quality=85)
    return encode(image, fmt)


CASES = {
    "28x28 PNG (MNIST-like)": lambda: seven((28, 28), 2, False, "PNG"),
    "280x280 PNG (canvas)": lambda: seven((280, 280), 18, True, "PNG"),
    "1024x768 JPEG (photo)": lambda: seven((1024, 768), 30, True, "JPEG"),
}


Preprocess = Callable[[bytes, int], object]


def load_preprocess(path: Path) -> Preprocess:
    """`preprocess_upload` of another version of gateway/preprocessing.py (its imports of
    `contract` and `gateway` resolve to this checkout)."""
    spec = importlib.util.spec_from_file_location("preprocessing_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.preprocess_upload  # type: ignore[no-any-return]


def timings(functions: dict[str, Preprocess], data: bytes, runs: int) -> dict[str, list[float]]:
    """Milliseconds per call of each function on `data`, the functions taking turns."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for function in functions.values():
        for _ in range(20):
            function(data, DEFAULT_MAX_IMAGE_PIXELS)
    for _ in range(runs):
        for name, function in functions.items():
            started = time.perf_counter()
            function(data, DEFAULT_MAX_IMAGE_PIXELS)
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.preprocess", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--before", type=Path, help="another gateway/preprocessing.py to time")
    args = parser.parse_args()
    functions: dict[str, Preprocess] = {"now": preprocess_upload}
    if args.before:
        functions = {"before": load_preprocess(args.before), **functions}
    print(
        f"Gateway preprocessing, one thread ({os.cpu_count()} cores on the machine), "
        f"median of {args.runs} runs"
    )
    columns = "".join(f" {name + ' ms':>10} {name + ' p95':>10}" for name in functions)
    print(f"{'image':<26} {'bytes':>8}{columns}" + (f" {'ratio':>6}" if args.before else ""))
    for name, make in CASES.items():
        data = make()
        times = timings(functions, data, args.runs)
        medians = {key: statistics.median(values) for key, values in times.items()}
        row = "".join(
            f" {medians[key]:>10.3f} {sorted(values)[int(0.95 * len(values))]:>10.3f}"
            for key, values in times.items()
        )
        ratio = f" {medians['now'] / medians['before']:>6.2f}" if args.before else ""
        print(f"{name:<26} {len(data):>8}{row}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
