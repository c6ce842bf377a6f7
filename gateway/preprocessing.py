"""Decode uploads and normalise them the way MNIST digits were normalised.

Pure functions over bytes, Pillow images and numpy arrays. The same algorithm runs inside
the SavedModel's `predict_image_bytes` signature (training/graph_preprocessing.py).
"""

import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from contract import (
    BORDER_COVER,
    CENTRE_OF_MASS,
    CORE_NARROW,
    CORE_WIDE,
    DENSE_BOX_FILL,
    DENSE_MIN_SPAN,
    DIGIT_BOX,
    IMAGE_SIZE,
    INK_FLOOR,
    INK_THRESHOLD,
    MAX_BANDS,
    MAX_BORDER_RUNS,
    MAX_CORE_NARROW_AT_BORDER,
    MAX_CORE_NARROW_DENSE,
    MAX_CORE_WIDE,
    MAX_DIGIT_WIDTH_RATIO,
    MIN_BAND_SHARE,
    MIN_CONTRAST,
    MIN_CORE_TEST_PIXELS,
    MIN_DIGIT_PIXELS,
    MIN_DIGIT_SPAN,
    MIN_PART_SHARE,
    MIN_SIGNAL_TO_NOISE,
    REFUSAL_BLANK,
    REFUSAL_FILLED,
    REFUSAL_NOISE,
    REFUSAL_PATTERN,
    REFUSAL_SEVERAL,
    REFUSAL_TOO_SMALL,
    WORK_SIZE,
)
from gateway.digit_parts import band_ink, border_ring, border_runs, digit_mask, ink_box
from gateway.errors import InvalidImage, NoDigitFound, PayloadTooLarge, UnsupportedImageType
from gateway.ink import InkMap, ink_map

# What people commonly send; MPO is what many phone cameras call their JPEGs.
ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "MPO", "GIF", "WEBP", "BMP", "TIFF"})
_HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
# Documents people upload by mistake, recognised so the answer can say what they sent.
_DOCUMENT_SIGNATURES = {
    b"%PDF": "PDF",
    b"<svg": "SVG",
    b"<?xml": "XML/SVG",
    b"<!doctype html": "HTML",
    b"<html": "HTML",
}


def _not_an_image(data: bytes) -> InvalidImage | UnsupportedImageType:
    """A document (PDF, SVG, HTML) is named as such; anything else is unreadable."""
    head = data[:256].lstrip().lower()
    for signature, kind in _DOCUMENT_SIGNATURES.items():
        if head.startswith(signature.lower()):
            return UnsupportedImageType(
                f"{kind} files are not supported; send PNG, JPEG, GIF, WebP, BMP or TIFF."
            )
    return InvalidImage(
        "The uploaded file is not a readable image; send a PNG or JPEG image of a digit."
    )


def decode_digit_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode an upload into a grayscale ("L") image with any transparency flattened onto white.

    Raises:
        InvalidImage: empty, corrupt or truncated data, or not an image at all.
        UnsupportedImageType: an image format outside `ACCEPTED_FORMATS`.
        PayloadTooLarge: the declared size exceeds `max_pixels` (checked before decoding).
    """
    if not data:
        raise InvalidImage("The uploaded file is empty; send a PNG or JPEG image of a digit.")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns; ours below is stricter and raises.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise _not_an_image(data) from exc
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(max_pixels) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise _corrupt() from exc
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedImageType(
            f"Images in {image.format} format are not supported; "
            "send PNG, JPEG, GIF, WebP, BMP or TIFF."
        )
    if image.width * image.height > max_pixels:
        raise _too_many_pixels(max_pixels)
    try:
        if image.format in ("JPEG", "MPO"):
            # Let libjpeg decode at 1/2..1/8 scale: big photos decode several times faster.
            image.draft("L", (WORK_SIZE, WORK_SIZE))
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # no copy when there is nothing to turn
        return _to_grayscale_on_white(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _corrupt() from exc


def _corrupt() -> InvalidImage:
    return InvalidImage("The uploaded image is truncated or corrupt; send the complete file.")


def _too_many_pixels(max_pixels: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The image has more than {max_pixels} pixels; send a smaller image of the digit."
    )


def _to_grayscale_on_white(image: Image.Image) -> Image.Image:
    if image.mode in _HIGH_BIT_MODES:
        values = np.asarray(image, dtype=np.float32)
        if image.mode.startswith("I;16") or values.max(initial=0.0) > 255:
            values = values / 257.0
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        # Canvas drawings are often dark strokes on a transparent background.
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    if image.mode == "L":
        return image
    if image.mode not in ("RGB", "1", "P"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    return image.convert("L")


@dataclass(frozen=True, slots=True)
class PageInk:
    """The ink of a page at work size: what /predict and /read start from."""

    found: InkMap
    mask: np.ndarray  # ink >= INK_THRESHOLD
    within: tuple[slice, slice]  # the mask's bounding box
    scale: int  # upload pixels per work pixel


def page_ink(image: Image.Image, work_size: int = WORK_SIZE) -> PageInk:
    """The ink of a grayscale image, reduced so its longer side is at most `work_size`.

    Raises:
        NoDigitFound: the image is blank, uniform or noise.
    """
    scale = work_factor(image.size, work_size)
    pixels = np.asarray(_reduce(image, scale), dtype=np.float32)
    found = ink_map(pixels)
    if found.contrast < MIN_CONTRAST:
        raise NoDigitFound(REFUSAL_BLANK)
    if found.spread < MIN_SIGNAL_TO_NOISE * noise_level(pixels):
        raise NoDigitFound(REFUSAL_NOISE)
    mask = found.ink >= INK_THRESHOLD
    within = ink_box(mask)
    if within is None:
        raise NoDigitFound(REFUSAL_BLANK)
    return PageInk(found, mask, within, scale)


def normalise_digit(image: Image.Image) -> np.ndarray:
    """Turn a grayscale image into a 28x28 float32 MNIST digit: white ink on black, in [0, 1].

    The ink is found whatever the light (gateway.ink) and the digit among its parts
    (gateway.digit_parts); it is cropped, fitted in a 20x20 box keeping its aspect ratio,
    and placed so its centre of mass is at the centre of the frame.

    Raises:
        NoDigitFound: the image is blank, uniform or noise, or its ink is not one digit.
    """
    page = page_ink(image)
    within = page.within
    mask = digit_mask(page.mask, within, page.found.ink, page.found.flat_field)
    if isinstance(mask, str):
        raise NoDigitFound(mask)
    left_out = mask is not page.mask  # digit_mask answers the mask itself when it is all digit
    if left_out:
        within = ink_box(mask) or within
    refusal = not_one_digit(mask, mask[within], page.scale)
    if refusal:
        raise NoDigitFound(refusal)
    return digit_image(page.found.ink[within], mask[within] if left_out else None)


def digit_image(crop: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """The ink of one digit's box as MNIST's 28x28 frame. With `keep`, the digit's pixels in
    that box: other ink there (a neighbour, a stray mark) is left out, a pixel's rim kept for
    the digit's soft edges."""
    if keep is not None:
        crop = np.where(ndimage.maximum_filter(keep, size=3), crop, 0.0)
    crop = np.clip((crop - INK_FLOOR) / (1.0 - INK_FLOOR), 0.0, 1.0)
    return _centre_in_frame(_fit_in_box(crop))


def not_one_digit(mask: np.ndarray, box: np.ndarray, scale: int = 1) -> str | None:
    """Why the ink is not one digit (a REFUSAL_ sentence), or None when it may be.

    `mask` is the whole image's ink at work size, `box` its bounding box, `scale` the
    upload's pixels per work pixel. The SavedModel's graph decides the same way."""
    height, width = box.shape
    longer = max(height, width)
    total = int(box.sum())
    if longer * scale < MIN_DIGIT_PIXELS or longer < MIN_DIGIT_SPAN * max(mask.shape):
        return REFUSAL_TOO_SMALL
    if width >= MAX_DIGIT_WIDTH_RATIO * height:
        return REFUSAL_SEVERAL
    parts = band_ink(box.sum(axis=0))
    big_parts = int((parts >= MIN_PART_SHARE * total).sum())
    if big_parts >= 3 or (big_parts == 2 and width >= height):
        return REFUSAL_SEVERAL
    bands = int((band_ink(box.sum(axis=1)) >= MIN_BAND_SHARE * total).sum())
    ring = border_ring(mask)
    if bands > MAX_BANDS or border_runs(ring) > MAX_BORDER_RUNS:
        return REFUSAL_PATTERN
    if longer < MIN_CORE_TEST_PIXELS:
        return None
    integral = np.zeros((height + 1, width + 1), np.int32)
    np.cumsum(box, axis=0, dtype=np.int32, out=integral[1:, 1:])
    np.cumsum(integral[1:, 1:], axis=1, out=integral[1:, 1:])
    core_wide = _core_share(integral, CORE_WIDE * longer, total)
    core_narrow = _core_share(integral, CORE_NARROW * longer, total)
    dense = total >= DENSE_BOX_FILL * box.size and longer >= DENSE_MIN_SPAN * max(mask.shape)
    if (
        core_wide >= MAX_CORE_WIDE
        or (dense and core_narrow >= MAX_CORE_NARROW_DENSE)
        or (core_narrow >= MAX_CORE_NARROW_AT_BORDER and ring.mean() >= BORDER_COVER)
    ):
        return REFUSAL_FILLED
    return None


def _core_share(integral: np.ndarray, half_side: float, total: int) -> float:
    """The share of ink whose whole (2k+1)-pixel square neighbourhood is ink: thick strokes
    and filled areas keep a core under erosion, pen strokes of a digit do not. `integral` is
    the ink box's summed-area table, with a zero first row and column."""
    side = 2 * max(1, round(half_side)) + 1
    if side > min(integral.shape) - 1:
        return 0.0
    windows = (
        integral[side:, side:]
        - integral[:-side, side:]
        - integral[side:, :-side]
        + integral[:-side, :-side]
    )
    return float((windows == side * side).sum()) / max(total, 1)


def noise_level(pixels: np.ndarray) -> float:
    """Pixel noise as a standard deviation, from the median difference of horizontal
    neighbours: flat paper and clean drawings give 0, random noise gives a lot."""
    differences = np.abs(np.diff(pixels, axis=1)).ravel()
    middle = differences.size // 2
    # Mostly flat (a canvas, a scan): more than half the differences are 0, so is the median.
    if differences.size - np.count_nonzero(differences) > middle or not differences.size:
        return 0.0
    median = float(np.sort(differences)[middle])
    return 1.4826 * median / math.sqrt(2.0)


def work_factor(size: tuple[int, int], work_size: int = WORK_SIZE) -> int:
    """Upload pixels per work pixel: whole boxes, so the longer side is at most `work_size`."""
    return max(1, math.ceil(max(size) / work_size))


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    if factor <= 1:
        return image
    width, height = image.size
    # Whole boxes only, so the graph's average pooling computes exactly the same thing.
    return image.crop((0, 0, width - width % factor, height - height % factor)).reduce(factor)


def digit_box_size(height: int, width: int) -> tuple[int, int]:
    """The size of a height x width crop scaled so its longer side is `DIGIT_BOX`."""
    scale = DIGIT_BOX / max(height, width)
    return max(1, math.floor(height * scale + 0.5)), max(1, math.floor(width * scale + 0.5))


def _fit_in_box(crop: np.ndarray) -> np.ndarray:
    height, width = digit_box_size(*crop.shape)
    resized = Image.fromarray(crop, "F").resize((width, height), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def centre_offsets(digit: np.ndarray) -> tuple[int, int]:
    """Top-left offsets that put the centre of mass of `digit` at the frame's centre."""
    total = float(digit.sum())
    height, width = digit.shape
    if total <= 0:
        return (IMAGE_SIZE - height) // 2, (IMAGE_SIZE - width) // 2
    row_mass = (digit.sum(axis=1) * np.arange(height)).sum() / total
    col_mass = (digit.sum(axis=0) * np.arange(width)).sum() / total
    top = min(max(math.floor(CENTRE_OF_MASS - row_mass + 0.5), 0), IMAGE_SIZE - height)
    left = min(max(math.floor(CENTRE_OF_MASS - col_mass + 0.5), 0), IMAGE_SIZE - width)
    return top, left


def _centre_in_frame(digit: np.ndarray) -> np.ndarray:
    top, left = centre_offsets(digit)
    frame = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return frame


def preprocess_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """Bytes of an upload to a 28x28 float32 array ready for the model."""
    return normalise_digit(decode_digit_image(data, max_pixels))


def encode_png(digit: np.ndarray) -> bytes:
    """A normalised [28, 28] float digit as an 8-bit grayscale PNG, white on black."""
    buffer = io.BytesIO()
    pixels = np.round(np.clip(digit, 0.0, 1.0) * 255).astype(np.uint8)
    Image.fromarray(pixels, "L").save(buffer, format="PNG")
    return buffer.getvalue()
