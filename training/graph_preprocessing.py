"""MNIST normalisation as TensorFlow ops, for the `predict_image_bytes` signature.

The in-graph twin of gateway/preprocessing.py: same steps, same constants (from
`contract`), so internal callers sending encoded images get the gateway's answers.
EXIF orientation is not applied here (TensorFlow's decoders ignore it).
"""

import tensorflow as tf

from contract import (
    CENTRE_OF_MASS,
    DIGIT_BOX,
    IMAGE_SIZE,
    INK_FLOOR,
    INK_THRESHOLD,
    MAX_INK_FRACTION,
    MIN_CONTRAST,
    MIN_SIGNAL_TO_NOISE,
    WORK_SIZE,
)

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
    return tf.cast(decoded[..., 0], tf.float32)


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


def _reduce_to_work_size(gray: tf.Tensor) -> tf.Tensor:
    height, width = tf.shape(gray)[0], tf.shape(gray)[1]
    factor = (tf.maximum(height, width) + WORK_SIZE - 1) // WORK_SIZE

    def reduce() -> tf.Tensor:
        rows, cols = height // factor, width // factor
        cropped = gray[: rows * factor, : cols * factor]
        boxes = tf.reshape(cropped, tf.stack([rows, factor, cols, factor]))
        return tf.reduce_mean(boxes, axis=[1, 3])

    return tf.cond(factor > 1, reduce, lambda: gray)


def normalise_digit(gray: tf.Tensor) -> tf.Tensor:
    """A float32 [h, w] grayscale image (0-255) to a [28, 28, 1] MNIST digit in [0, 1]."""
    pixels = _reduce_to_work_size(gray)
    border = tf.concat([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]], axis=0)
    background = tf.sort(border)[tf.size(border) // 2]
    invert = background > 127.5
    pixels = tf.where(invert, 255.0 - pixels, pixels)
    background = tf.where(invert, 255.0 - background, background)
    contrast = tf.reduce_max(pixels) - background
    ink = tf.clip_by_value((pixels - background) / tf.maximum(contrast, 1.0), 0.0, 1.0)
    mask = ink >= INK_THRESHOLD
    checks = [
        tf.debugging.assert_greater_equal(
            contrast,
            MIN_CONTRAST,
            message="No digit found: the image is blank or nearly uniform.",
        ),
        tf.debugging.assert_greater_equal(
            contrast,
            MIN_SIGNAL_TO_NOISE * _noise_level(pixels),
            message="No digit found: the image looks like noise.",
        ),
        tf.debugging.assert_less_equal(
            tf.reduce_mean(tf.cast(mask, tf.float32)),
            MAX_INK_FRACTION,
            message="No digit found: ink or noise covers most of the image.",
        ),
    ]
    # Refuse before cropping: an empty mask has no bounding box to slice.
    with tf.control_dependencies(checks):
        mask = tf.identity(mask)
    rows = tf.where(tf.reduce_any(mask, axis=1))[:, 0]
    cols = tf.where(tf.reduce_any(mask, axis=0))[:, 0]
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    crop = tf.clip_by_value((crop - INK_FLOOR) / (1.0 - INK_FLOOR), 0.0, 1.0)
    return _centre_in_frame(_fit_in_box(crop))[..., None]


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


def normalise_encoded_images(image_bytes: tf.Tensor) -> tf.Tensor:
    """A [n] string tensor of encoded images to [n, 28, 28, 1] float32 MNIST digits."""
    return tf.map_fn(
        lambda data: normalise_digit(decode_grayscale_on_white(data)),
        image_bytes,
        fn_output_signature=tf.TensorSpec((IMAGE_SIZE, IMAGE_SIZE, 1), tf.float32),
    )
