"""Training digits as they reach the model through the gateway, not as MNIST's pen drew them.

Each MNIST digit is redrawn the way uploads differ from it (a bolder or finer pen, a
low-resolution original enlarged with smoothing, blur, an elastic wobble of the hand), then
normalised by the gateway's own code, so the model learns the 28x28 images it will be sent.
"""

import multiprocessing

import numpy as np
from PIL import Image, ImageFilter

from gateway.errors import NoDigitFound
from gateway.preprocessing import normalise_digit

SCALE = 3  # strokes are thickened and thinned at 84x84, in steps a third of an MNIST pixel


def _elastic(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth random displacement of up to about a pixel and a half."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    size = digit.shape[0]
    shifts = [gaussian_filter(rng.uniform(-1, 1, digit.shape), 4.0) * 30.0 for _ in range(2)]
    rows, cols = np.mgrid[:size, :size].astype(np.float32)
    warped = map_coordinates(digit, [rows + shifts[0], cols + shifts[1]], order=1, mode="constant")
    return np.asarray(warped, dtype=np.float32)


def _pen(pixels: np.ndarray, steps: int) -> np.ndarray:
    """Grey-level dilation (steps > 0) or erosion (< 0) by a (2|steps|+1) square."""
    from scipy.ndimage import maximum_filter, minimum_filter

    size = 2 * abs(steps) + 1
    if steps >= 0:
        return np.asarray(maximum_filter(pixels, size, mode="constant", cval=0))
    return np.asarray(minimum_filter(pixels, size, mode="constant", cval=255))


def redraw(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One upload-like drawing of a 28x28 uint8 digit (white on black), at 84x84."""
    pixels = digit.astype(np.float32)
    if rng.random() < 0.5:
        pixels = _elastic(pixels, rng)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image = image.resize((28 * SCALE, 28 * SCALE), Image.Resampling.BICUBIC)
    # Pen width: a step thinner, or bolder by up to five (about 0.05 of the digit's height
    # on each side, a heavy marker).
    image = Image.fromarray(_pen(np.asarray(image), int(rng.integers(-1, 6))))
    chance = rng.random()
    if chance < 0.3:
        # A low-resolution original, 6-16 px tall (as small as an 8x8 scan of a digit),
        # enlarged again with smoothing.
        small = int(rng.integers(6, 17))
        image = image.resize((small, small), Image.Resampling.BOX).resize(
            image.size,
            Image.Resampling.BILINEAR if rng.random() < 0.5 else Image.Resampling.BICUBIC,
        )
    elif chance < 0.55:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.6, 1.8))))
    return image


def _upload_like_part(images: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = images.astype(np.float32) / 255.0
    for index, digit in enumerate(images):
        try:
            out[index] = normalise_digit(redraw(digit, rng))
        except NoDigitFound:
            continue
    return out


def upload_like(images: np.ndarray, seed: int, processes: int = 1) -> np.ndarray:
    """A redrawn, gateway-normalised copy of `images` (uint8 [n, 28, 28]) as float32 in
    [0, 1]; a digit the redrawing made unrecognisable keeps its original.

    With several processes the parts are drawn side by side (spawned, not forked: the
    caller may hold TensorFlow's threads); the result depends on `processes` and `seed`.
    """
    if processes <= 1:
        return _upload_like_part(images, seed)
    parts = np.array_split(images, processes)
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        done = pool.starmap(
            _upload_like_part, [(part, seed + index) for index, part in enumerate(parts)]
        )
    return np.concatenate(done)
