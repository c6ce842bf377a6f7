"""MNIST normalisation as TensorFlow ops, for the `predict_image_bytes` signature.

The in-graph twin of gateway/preprocessing.py: same steps, same constants and the same
refusal sentences (from `contract`), so internal callers sending encoded images get the
gateway's answers: the ink found whatever the light (training/graph_ink.py), the digit
chosen among its parts (training/graph_parts.py), JPEGs turned upright by their EXIF
Orientation (training/graph_exif.py). Each image is judged on its own: an image with no
digit gets its refusal, never an error that would fail the rest of its batch.
"""

import tensorflow as tf

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
    INPUT_SHAPE,
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
from training.graph_exif import exif_orientation, oriented
from training.graph_ink import ink_map, window_max
from training.graph_parts import band_ink, border_ring, border_runs, digit_mask

_GRAY_WEIGHTS = tf.constant([0.299, 0.587, 0.114])  # ITU-R 601-2, as Pillow's "L"


def decode_grayscale_on_white(image_bytes: tf.Tensor) -> tf.Tensor:
    """PNG/JPEG/GIF/BMP bytes to a float32 [h, w] grayscale image, transparency on white."""
    return tf.cond(
        tf.io.is_jpeg(image_bytes),
        lambda: _decode_jpeg_scaled(image_bytes),
        lambda: _decode_other(image_bytes),
    )


def _decode_jpeg_scaled(image_bytes: tf.Tensor) -> tf.Tensor:
    # Like the gateway's Pillow draft(): libjpeg decodes big photos at 1/2, 1/4 or 1/8
    # scale, the largest that keeps both sides at least WORK_SIZE, straight to luma.
    shape = tf.io.extract_jpeg_shape(image_bytes)
    scale = tf.minimum(shape[0] // WORK_SIZE, shape[1] // WORK_SIZE)
    index = (
        tf.cast(scale >= 2, tf.int32)
        + tf.cast(scale >= 4, tf.int32)
        + tf.cast(scale >= 8, tf.int32)
    )
    decoded = tf.switch_case(
        index,
        [
            lambda ratio=ratio: tf.io.decode_jpeg(image_bytes, channels=1, ratio=ratio)
            for ratio in (1, 2, 4, 8)
        ],
    )
    # Upright, as the phone's EXIF Orientation says (the gateway's exif_transpose).
    return oriented(tf.cast(decoded[..., 0], tf.float32), exif_orientation(image_bytes))


def _decode_other(image_bytes: tf.Tensor) -> tf.Tensor:
    decoded = tf.io.decode_image(image_bytes, expand_animations=False)
    pixels = tf.cast(decoded, tf.float32)
    channels = tf.shape(pixels)[-1]
    has_alpha = tf.equal(channels % 2, 0)  # 2 = gray+alpha, 4 = RGBA
    alpha = tf.cond(
        has_alpha, lambda: pixels[..., -1] / 255.0, lambda: tf.ones_like(pixels[..., 0])
    )
    gray = tf.cond(
        channels >= 3,
        lambda: tf.tensordot(pixels[..., :3], _GRAY_WEIGHTS, axes=1),
        lambda: pixels[..., 0],
    )
    return gray * alpha + 255.0 * (1.0 - alpha)


def _work_factor(gray: tf.Tensor) -> tf.Tensor:
    return tf.maximum((tf.reduce_max(tf.shape(gray)[:2]) + WORK_SIZE - 1) // WORK_SIZE, 1)


def _reduce_to_work_size(gray: tf.Tensor) -> tf.Tensor:
    height, width = tf.shape(gray)[0], tf.shape(gray)[1]
    factor = _work_factor(gray)

    def reduce() -> tf.Tensor:
        rows, cols = height // factor, width // factor
        cropped = gray[: rows * factor, : cols * factor]
        boxes = tf.reshape(cropped, tf.stack([rows, factor, cols, factor]))
        return tf.reduce_mean(boxes, axis=[1, 3])

    return tf.cond(factor > 1, reduce, lambda: gray)


def normalise_digit(gray: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A float32 [h, w] grayscale image (0-255) to a [28, 28, 1] MNIST digit in [0, 1] and
    the refusal: "" when the image holds one digit, else the gateway's sentence saying why
    not (the digit is then zeros)."""
    scale = tf.cast(_work_factor(gray), tf.float32)
    pixels = _reduce_to_work_size(gray)
    found = ink_map(pixels)
    refusal = first_refusal(
        [
            (found.contrast < MIN_CONTRAST, REFUSAL_BLANK),
            (found.spread < MIN_SIGNAL_TO_NOISE * _noise_level(pixels), REFUSAL_NOISE),
        ]
    )

    def read() -> tuple[tf.Tensor, tf.Tensor]:
        all_ink = found.ink >= INK_THRESHOLD
        mask, refused = digit_mask(all_ink, found)
        digit, refusal = tf.cond(
            tf.equal(refused, ""),
            lambda: _shaped(found.ink, all_ink, mask, scale),
            lambda: (tf.zeros(INPUT_SHAPE), refused),
        )
        return digit, refusal

    # Blank or noise: there may be no ink to crop at all.
    digit, refusal = tf.cond(tf.equal(refusal, ""), read, lambda: (tf.zeros(INPUT_SHAPE), refusal))
    return digit, refusal


def _shaped(
    ink: tf.Tensor, all_ink: tf.Tensor, mask: tf.Tensor, scale: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """The chosen ink cropped, fitted and centred, and the one-digit tests' refusal."""
    rows = tf.where(tf.reduce_any(mask, axis=1))[:, 0]
    cols = tf.where(tf.reduce_any(mask, axis=0))[:, 0]
    box = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    # The digit's ink, with a pixel's rim for its soft edges; nothing of what was left out.
    rim = window_max(tf.cast(box, tf.float32), tf.constant(3)) > 0
    crop = tf.where(tf.reduce_all(tf.equal(mask, all_ink)), crop, tf.where(rim, crop, 0.0))
    crop = tf.clip_by_value((crop - INK_FLOOR) / (1.0 - INK_FLOOR), 0.0, 1.0)
    digit = _centre_in_frame(_fit_in_box(crop))[..., None]
    return digit, _one_digit_refusal(mask, box, scale)


def first_refusal(refusals: list[tuple[tf.Tensor, str]]) -> tf.Tensor:
    """The sentence of the first condition that holds, or "" when none does."""
    chosen = tf.constant("")
    for refused, sentence in reversed(refusals):
        chosen = tf.where(refused, sentence, chosen)
    return chosen


def _one_digit_refusal(mask: tf.Tensor, box: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """gateway.preprocessing.not_one_digit in TensorFlow: the same evidence, the same limits,
    the same sentence (or "")."""
    size = tf.cast(tf.shape(box), tf.float32)
    height, width = size[0], size[1]
    longer = tf.maximum(height, width)
    frame = tf.cast(tf.reduce_max(tf.shape(mask)), tf.float32)
    ink = tf.cast(box, tf.float32)
    total = tf.reduce_sum(ink)
    parts = band_ink(tf.reduce_sum(ink, axis=0))
    big_parts = tf.reduce_sum(tf.cast(parts >= MIN_PART_SHARE * total, tf.int32))
    bands = tf.reduce_sum(
        tf.cast(band_ink(tf.reduce_sum(ink, axis=1)) >= MIN_BAND_SHARE * total, tf.int32)
    )
    ring = border_ring(mask)
    runs_in = border_runs(mask)
    integral = tf.pad(tf.cumsum(tf.cumsum(ink, axis=0), axis=1), [[1, 0], [1, 0]])
    core_wide = _core_share(integral, CORE_WIDE * longer, total)
    core_narrow = _core_share(integral, CORE_NARROW * longer, total)
    dense = tf.logical_and(
        total >= DENSE_BOX_FILL * height * width, longer >= DENSE_MIN_SPAN * frame
    )
    border_cover = tf.reduce_mean(tf.cast(ring, tf.float32))
    filled = tf.reduce_any(
        tf.stack(
            [
                core_wide >= MAX_CORE_WIDE,
                tf.logical_and(dense, core_narrow >= MAX_CORE_NARROW_DENSE),
                tf.logical_and(
                    border_cover >= BORDER_COVER, core_narrow >= MAX_CORE_NARROW_AT_BORDER
                ),
            ]
        )
    )
    return first_refusal(
        [
            (
                tf.logical_or(longer * scale < MIN_DIGIT_PIXELS, longer < MIN_DIGIT_SPAN * frame),
                REFUSAL_TOO_SMALL,
            ),
            (width >= MAX_DIGIT_WIDTH_RATIO * height, REFUSAL_SEVERAL),
            (
                tf.logical_or(big_parts >= 3, tf.logical_and(big_parts == 2, width >= height)),
                REFUSAL_SEVERAL,
            ),
            (tf.logical_or(bands > MAX_BANDS, runs_in > MAX_BORDER_RUNS), REFUSAL_PATTERN),
            (tf.logical_and(longer >= MIN_CORE_TEST_PIXELS, filled), REFUSAL_FILLED),
        ]
    )


def _core_share(integral: tf.Tensor, half_side: tf.Tensor, total: tf.Tensor) -> tf.Tensor:
    """The share of ink whose whole square neighbourhood is ink (see the gateway's twin);
    `integral` is the ink box's summed-area table with a zero first row and column."""
    # Python's round() halves to even; so does tf.round.
    side = 2 * tf.maximum(tf.cast(tf.round(half_side), tf.int32), 1) + 1

    def share() -> tf.Tensor:
        windows = (
            integral[side:, side:]
            - integral[:-side, side:]
            - integral[side:, :-side]
            + integral[:-side, :-side]
        )
        full = tf.cast(tf.equal(windows, tf.cast(side * side, tf.float32)), tf.float32)
        return tf.reduce_sum(full) / tf.maximum(total, 1.0)

    return tf.cond(side > tf.reduce_min(tf.shape(integral)) - 1, lambda: tf.constant(0.0), share)


def _noise_level(pixels: tf.Tensor) -> tf.Tensor:
    differences = tf.reshape(tf.abs(pixels[:, 1:] - pixels[:, :-1]), [-1])
    count = tf.size(differences)
    median = tf.cond(count > 0, lambda: tf.sort(differences)[count // 2], lambda: tf.constant(0.0))
    return 1.4826 * median / tf.sqrt(2.0)


def _fit_in_box(crop: tf.Tensor) -> tf.Tensor:
    size = tf.cast(tf.shape(crop), tf.float32)
    scaled = tf.maximum(tf.floor(size * (DIGIT_BOX / tf.reduce_max(size)) + 0.5), 1.0)
    resized = tf.image.resize(crop[..., None], tf.cast(scaled, tf.int32), antialias=True)
    return tf.clip_by_value(resized[..., 0], 0.0, 1.0)


def _centre_in_frame(digit: tf.Tensor) -> tf.Tensor:
    height, width = tf.shape(digit)[0], tf.shape(digit)[1]
    total = tf.maximum(tf.reduce_sum(digit), 1e-6)
    row_mass = tf.reduce_sum(tf.reduce_sum(digit, 1) * tf.range(height, dtype=tf.float32)) / total
    col_mass = tf.reduce_sum(tf.reduce_sum(digit, 0) * tf.range(width, dtype=tf.float32)) / total
    top = tf.clip_by_value(
        tf.cast(tf.floor(CENTRE_OF_MASS - row_mass + 0.5), tf.int32), 0, IMAGE_SIZE - height
    )
    left = tf.clip_by_value(
        tf.cast(tf.floor(CENTRE_OF_MASS - col_mass + 0.5), tf.int32), 0, IMAGE_SIZE - width
    )
    padding = [[top, IMAGE_SIZE - height - top], [left, IMAGE_SIZE - width - left]]
    return tf.reshape(tf.pad(digit, padding), (IMAGE_SIZE, IMAGE_SIZE))


def normalise_encoded_images(image_bytes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A [n] string tensor of encoded images to [n, 28, 28, 1] float32 MNIST digits and [n]
    refusals ("" for each image that holds a digit): each image is judged on its own."""
    digits, refusals = tf.map_fn(
        lambda data: normalise_digit(decode_grayscale_on_white(data)),
        image_bytes,
        fn_output_signature=(tf.TensorSpec(INPUT_SHAPE, tf.float32), tf.TensorSpec([], tf.string)),
    )
    return digits, refusals
