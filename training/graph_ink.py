"""gateway/ink.py as TensorFlow ops, for the `predict_image_bytes` signature: where the ink
is on a page, whatever the light. Same steps, same constants (`contract`), same numbers:
percentiles interpolate as numpy's, windows mirror the page as scipy's "reflect" mode does.
"""

from typing import NamedTuple

import tensorflow as tf

from contract import (
    BLACK_BORDER_SHARE,
    BLACK_LEVEL,
    BORDER_FLAT,
    LEAST_WINDOW,
    PAPER_FLOOR,
    PAPER_WINDOW,
    SHADE_CEILING,
    SHADE_FLOOR,
    SHADE_GRADIENT,
    SHADE_WIDTH,
    SHADED_SHARE,
    STROKE_PERCENTILE,
    WINDOW_PER_STROKE,
)


class InkMap(NamedTuple):
    ink: tf.Tensor  # float32 [h, w] in [0, 1]
    contrast: tf.Tensor  # grey levels between the paper and the strongest ink
    spread: tf.Tensor  # grey levels the noise is judged against
    flat: tf.Tensor  # bool: a flat field was used (page and depth are then meaningful)
    page: tf.Tensor  # the page with ink bright: 255 - grey
    depth: tf.Tensor  # each pixel's shortfall from the local paper (zeros without a flat field)


def border_of(pixels: tf.Tensor) -> tf.Tensor:
    return tf.concat([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]], axis=0)


def percentile(values: tf.Tensor, q: float) -> tf.Tensor:
    """numpy.percentile(values, q) with its default linear interpolation."""
    ordered = tf.sort(tf.reshape(values, [-1]))
    position = q / 100.0 * tf.cast(tf.size(ordered) - 1, tf.float32)
    below = tf.cast(tf.floor(position), tf.int32)
    above = tf.minimum(below + 1, tf.size(ordered) - 1)
    fraction = position - tf.cast(below, tf.float32)
    return ordered[below] + fraction * (ordered[above] - ordered[below])


def odd(size: tf.Tensor) -> tf.Tensor:
    """max(3, round(size) | 1), Python's round (halves to even) as tf.round."""
    rounded = tf.cast(tf.round(size), tf.int32)
    return tf.maximum(3, tf.bitwise.bitwise_or(rounded, 1))


def window_max(pixels: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """scipy.ndimage.maximum_filter(pixels, size=window, mode="reflect") for an odd window:
    the page mirrored at its edges (edge pixels repeated), then a sliding maximum, one
    axis after the other."""
    return tf.transpose(_axis_max(tf.transpose(_axis_max(pixels, window)), window))


def _axis_max(pixels: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """The sliding maximum down the rows. A window longer than twice the rows takes in a
    whole period of the mirrored page: the column's maximum, everywhere."""
    half = window // 2
    rows = tf.shape(pixels)[0]

    def sliding() -> tf.Tensor:
        padded = tf.pad(pixels, [[half, half], [0, 0]], mode="SYMMETRIC")
        ones = tf.ones([], tf.int32)
        pooled = tf.raw_ops.MaxPoolV2(
            input=padded[None, :, :, None],
            ksize=tf.stack([ones, window, ones, ones]),
            strides=[1, 1, 1, 1],
            padding="VALID",
        )
        return tf.reshape(pooled, tf.shape(pixels))

    def whole() -> tf.Tensor:
        return tf.broadcast_to(tf.reduce_max(pixels, axis=0, keepdims=True), tf.shape(pixels))

    return tf.cond(half <= rows, sliding, whole)


def closing(pixels: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """scipy.ndimage.grey_closing(pixels, size=(window, window), mode="reflect")."""
    dilated = window_max(pixels, window)
    return -window_max(-dilated, window)


def inside_distance(mask: tf.Tensor) -> tf.Tensor:
    """gateway.ink.inside_distance: each pixel's chessboard distance to the nearest pixel of
    the page outside `mask` (int32; 0 outside it), by counting 3x3 erosions."""

    def erode(current: tf.Tensor) -> tf.Tensor:
        padded = tf.pad(current, [[1, 1], [1, 1]], constant_values=1)  # beyond the page: inside
        pooled = -tf.nn.max_pool2d(-padded[None, :, :, None], 3, 1, "VALID")
        return pooled[0, :, :, 0]

    def more(current: tf.Tensor, total: tf.Tensor) -> tf.Tensor:  # noqa: ARG001 (loop variable)
        return tf.reduce_any(current > 0)

    def step(current: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return erode(current), total + current

    inside = tf.cast(mask, tf.float32)
    # Fully inside (nothing outside it on the page): scipy counts no distance at all.
    inside = tf.where(tf.reduce_all(mask), tf.zeros_like(inside), inside)
    _, total = tf.while_loop(more, step, (inside, tf.zeros_like(inside)))
    return tf.cast(total, tf.int32)


def ink_map(pixels: tf.Tensor) -> InkMap:
    """gateway.ink.ink_map: the ink of a grayscale page (float32 0-255, work size)."""
    border = border_of(pixels)
    background = tf.sort(border)[tf.size(border) // 2]
    light_paper = background > 127.5
    black = tf.reduce_mean(tf.cast(border <= BLACK_LEVEL, tf.float32))
    dark_ink = tf.logical_or(light_paper, black < BLACK_BORDER_SHARE)
    ink = tf.where(dark_ink, 255.0 - pixels, pixels)
    paper = tf.where(dark_ink, 255.0 - background, background)
    spread = tf.reduce_max(ink) - paper
    flat = tf.logical_and(
        dark_ink,
        tf.logical_or(tf.logical_not(light_paper), in_shadow(pixels, border)),
    )

    def one_paper_level() -> InkMap:
        return InkMap(
            tf.clip_by_value((ink - paper) / tf.maximum(spread, 1.0), 0.0, 1.0),
            spread,
            spread,
            flat,
            255.0 - pixels,
            tf.zeros_like(pixels),
        )

    def flat_field() -> InkMap:
        local = closing(pixels, paper_window(pixels))
        depth = local - pixels
        floor = PAPER_FLOOR * percentile(local, 95)
        strength = depth / tf.maximum(tf.maximum(local, floor), 1.0)
        peak = tf.reduce_max(strength)
        return InkMap(
            tf.clip_by_value(strength / tf.maximum(peak, 1e-6), 0.0, 1.0),
            tf.reduce_max(depth),
            spread,
            flat,
            255.0 - pixels,
            depth,
        )

    return InkMap(*tf.cond(flat, flat_field, one_paper_level))


def in_shadow(pixels: tf.Tensor, border: tf.Tensor) -> tf.Tensor:
    """gateway.ink.in_shadow: a flat plateau darker than the paper, lighter than ink."""

    def plateau_share() -> tf.Tensor:
        paper = percentile(pixels, 98)
        rows, cols = _gradient(pixels, 0), _gradient(pixels, 1)
        plateau = tf.logical_and(pixels > SHADE_FLOOR * paper, pixels < SHADE_CEILING * paper)
        plateau = tf.logical_and(plateau, tf.abs(rows) + tf.abs(cols) < SHADE_GRADIENT)
        # Wider than a pen: the inside of a bold grey stroke is flat too, but narrow.
        longer = tf.cast(tf.reduce_max(tf.shape(pixels)), tf.float32)
        wide = -window_max(-tf.cast(plateau, tf.float32), odd(SHADE_WIDTH * longer))
        return tf.reduce_mean(wide) >= SHADED_SHARE

    flat_border = tf.logical_or(
        tf.reduce_max(border) - tf.reduce_min(border) <= BORDER_FLAT,
        tf.reduce_min(tf.shape(pixels)) < 2,
    )
    return tf.cond(flat_border, lambda: tf.constant(False), plateau_share)


def _gradient(pixels: tf.Tensor, axis: int) -> tf.Tensor:
    """numpy.gradient along one axis: central differences, one-sided at the two ends."""
    if axis == 1:
        return tf.transpose(_gradient(tf.transpose(pixels), 0))
    middle = (pixels[2:] - pixels[:-2]) / 2.0
    first = pixels[1:2] - pixels[:1]
    last = pixels[-1:] - pixels[-2:-1]
    return tf.concat([first, middle, last], axis=0)


def paper_window(pixels: tf.Tensor) -> tf.Tensor:
    """gateway.ink.paper_window: a few pen widths (int32, odd)."""
    longer = tf.cast(tf.reduce_max(tf.shape(pixels)), tf.float32)
    found = closing(pixels, odd(PAPER_WINDOW * longer)) - pixels
    strokes = found >= 0.5 * tf.reduce_max(found)
    distance = inside_distance(strokes)
    middles = tf.logical_and(strokes, tf.equal(distance, _local_max(distance)))
    widths = tf.cast(tf.boolean_mask(distance, middles), tf.float32)
    width = tf.cond(
        tf.size(widths) > 0,
        lambda: 2.0 * percentile(widths, STROKE_PERCENTILE),
        lambda: tf.constant(1.0),
    )
    return odd(tf.maximum(LEAST_WINDOW * longer, WINDOW_PER_STROKE * width + 1.0))


def _local_max(values: tf.Tensor) -> tf.Tensor:
    """scipy.ndimage.maximum_filter(values, size=3) (mode "reflect") of int32 values."""
    return tf.cast(window_max(tf.cast(values, tf.float32), tf.constant(3)), values.dtype)
