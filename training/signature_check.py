"""Checks that a SavedModel's signatures answer as contract 1 says, on digits drawn here.

numpy only: export.py runs it on every export, and scripts/check_export_in_serving_tf.py
runs it in the serving image's TensorFlow, which has no Pillow and reaches the signatures
only by tensor name. The caller supplies how to run a signature and how to encode a page.
"""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from contract import (
    IMAGE_SIZE,
    INPUT_IMAGE,
    INPUT_IMAGE_BYTES,
    INPUT_PIXELS,
    NUM_CLASSES,
    OUTPUT_CONFIDENCE,
    OUTPUT_DIGIT,
    OUTPUT_PROBABILITIES,
    OUTPUT_REFUSAL,
    REFUSAL_BLANK,
    REFUSED_DIGIT,
    SIGNATURE_IMAGE,
    SIGNATURE_IMAGE_BYTES,
    SIGNATURE_PIXELS,
)

Array = npt.NDArray[Any]
# (signature, its input's name, a batch) -> the signature's outputs.
Run = Callable[[str, str, Array], Mapping[str, Array]]
Encode = Callable[[Array], bytes]

Strokes = list[tuple[float, float]]
# Points on a unit square, y downwards: a slightly slanted 1 as MNIST writers draw it, and
# the 7 a marker draws on a canvas (the warm-up request's and the local stack's sample).
ONE: Strokes = [(0.55, 0.05), (0.45, 0.95)]
ONE_ON_PAPER: Strokes = [(0.55, 0.2), (0.47, 0.8)]
SEVEN: Strokes = [(0.25, 0.21), (0.75, 0.21), (0.43, 0.82)]
PAPER = 235


def ink(size: int, stroke: Strokes, width: float) -> Array:
    """Anti-aliased ink in [0, 1] along the polyline `stroke` on a size x size canvas."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    distance = np.full((size, size), np.inf)
    for (x0, y0), (x1, y1) in zip(stroke, stroke[1:], strict=False):
        ax, ay, dx, dy = x0 * size, y0 * size, (x1 - x0) * size, (y1 - y0) * size
        t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        distance = np.minimum(distance, np.hypot(xs - (ax + t * dx), ys - (ay + t * dy)))
    return np.clip(width / 2 + 0.5 - distance, 0.0, 1.0)


def drawn_page(stroke: Strokes, size: int) -> Array:
    """A uint8 [size, size, 1] page: dark marker ink on light paper, as a canvas or scan gives."""
    return (PAPER - 215 * ink(size, stroke, width=size / 18)).round().astype(np.uint8)[..., None]


def mnist_one() -> Array:
    """A float32 [28, 28, 1] 1, white on black, inside the central 20x20 box like MNIST's."""
    image = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 1), np.float32)
    image[4:24, 4:24, 0] = ink(20, ONE, width=2.5)
    return image


def check_answer(name: str, answer: Mapping[str, Array], batch: int) -> Array:
    """Check one call's outputs; returns which rows were read (the others were refused).

    Raises:
        ValueError: an output has the wrong dtype or shape, or the values disagree.
    """
    for key, dtype, shape in (
        (OUTPUT_PROBABILITIES, np.float32, (batch, NUM_CLASSES)),
        (OUTPUT_DIGIT, np.int64, (batch,)),
        (OUTPUT_CONFIDENCE, np.float32, (batch,)),
        (OUTPUT_REFUSAL, np.object_, (batch,)),
    ):
        value = answer.get(key)
        if value is None or value.dtype != dtype or value.shape != shape:
            got = "nothing" if value is None else f"{value.dtype} {value.shape}"
            raise ValueError(f"{name}: output {key!r} is {got}, not {np.dtype(dtype)} {shape}")
    probabilities, digit, confidence = (
        answer[key] for key in (OUTPUT_PROBABILITIES, OUTPUT_DIGIT, OUTPUT_CONFIDENCE)
    )
    read: Array = answer[OUTPUT_REFUSAL] == b""
    refused_rows = (digit[~read] != REFUSED_DIGIT, confidence[~read] != 0, probabilities[~read])
    if any(np.any(rows) for rows in refused_rows):
        raise ValueError(f"{name}: refused rows answer digit {digit}, confidence {confidence}")
    probabilities, digit, confidence = probabilities[read], digit[read], confidence[read]
    if not np.all((probabilities >= 0) & (probabilities <= 1)):
        raise ValueError(f"{name}: probabilities outside [0, 1]: {probabilities}")
    if not np.allclose(probabilities.sum(axis=-1), 1.0, atol=1e-3):
        raise ValueError(f"{name}: probabilities sum to {probabilities.sum(axis=-1)}, not 1")
    if not np.array_equal(digit, probabilities.argmax(axis=-1)):
        raise ValueError(f"{name}: digit {digit} is not the argmax of the probabilities")
    if not np.allclose(confidence, probabilities.max(axis=-1), atol=1e-6):
        raise ValueError(f"{name}: confidence {confidence} is not the largest probability")
    return read


def check_signatures(run: Run, png: Encode, jpeg: Encode) -> dict[str, list[int]]:
    """Run the three signatures on a drawn 1 beside inputs they must refuse on their own rows.

    Returns:
        What each way of sending the 1 was read as: the float image, PNG, JPEG, pixels.

    Raises:
        ValueError: a signature answers otherwise than contract 1 says.
    """
    floats = np.stack([mnist_one(), np.zeros((IMAGE_SIZE, IMAGE_SIZE, 1), np.float32)])
    quantised = np.round(floats * 255).astype(np.uint8)
    floats = quantised.astype(np.float32) / np.float32(255)  # what predict_pixels must match
    by_float = run(SIGNATURE_IMAGE, INPUT_IMAGE, floats)
    check_answer(SIGNATURE_IMAGE, by_float, batch=2)

    paper = drawn_page(ONE_ON_PAPER, 200)
    pages = [png(paper), jpeg(paper), png(np.full_like(paper, PAPER))]
    by_bytes = run(SIGNATURE_IMAGE_BYTES, INPUT_IMAGE_BYTES, np.array(pages, dtype=object))
    refusals = by_bytes[OUTPUT_REFUSAL].tolist()
    read = check_answer(SIGNATURE_IMAGE_BYTES, by_bytes, batch=3).tolist()
    if read != [True, True, False] or refusals[2] != REFUSAL_BLANK.encode():
        raise ValueError(
            f"{SIGNATURE_IMAGE_BYTES}: expected a drawn 1 read as PNG and JPEG and a blank page "
            f"refused on its own row, got refusals {refusals}"
        )

    pixels = [image.tobytes() for image in quantised] + [bytes(IMAGE_SIZE * IMAGE_SIZE - 1)]
    by_pixels = run(SIGNATURE_PIXELS, INPUT_PIXELS, np.array(pixels, dtype=object))
    refusals = by_pixels[OUTPUT_REFUSAL].tolist()
    read = check_answer(SIGNATURE_PIXELS, by_pixels, batch=3).tolist()
    if read != [True, True, False] or b"784 bytes" not in refusals[2]:
        raise ValueError(
            f"{SIGNATURE_PIXELS}: 783 bytes beside two digits gave refusals {refusals}, "
            "not a refusal naming 784 bytes on its own row"
        )
    difference = np.abs(by_pixels[OUTPUT_PROBABILITIES][:2] - by_float[OUTPUT_PROBABILITIES]).max()
    if difference > 1e-5:
        raise ValueError(
            f"{SIGNATURE_PIXELS} answers otherwise than {SIGNATURE_IMAGE} on the same pixels "
            f"(probabilities differ by up to {difference:.2g})"
        )
    return {
        SIGNATURE_IMAGE: [int(by_float[OUTPUT_DIGIT][0])],
        SIGNATURE_IMAGE_BYTES: [int(digit) for digit in by_bytes[OUTPUT_DIGIT][:2]],
        SIGNATURE_PIXELS: [int(by_pixels[OUTPUT_DIGIT][0])],
    }
