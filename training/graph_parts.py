"""gateway/digit_parts.py as TensorFlow ops: which ink is the digit, among the ink's
8-connected parts. Parts are found by spreading each pixel's number to its neighbours until
nothing changes, numbered in raster order as scipy numbers them, and measured with segment
ops; every rule is the gateway's, with the constants of `contract`.
"""

from typing import NamedTuple

import tensorflow as tf

from contract import (
    DIGIT_PART_SPAN,
    FAINT_PEAK,
    FRAME_EDGE,
    FRAME_FILL,
    FRAME_INSIDE,
    LEVEL_SHARE,
    MAX_BANDS,
    MAX_BORDER_RUNS,
    MIN_BAND_SHARE,
    NEAR_PARTS,
    NEAR_SPECKS,
    REFUSAL_BLANK,
    REFUSAL_PATTERN,
    RIDGE_LEVEL,
    RIDGE_REACH,
    RIDGE_SHARE,
    SPECK_MASS,
)
from training.graph_ink import InkMap, inside_distance, window_max


class Parts(NamedTuple):
    where: tf.Tensor  # int64 [n_pixels, 2]: the mask's pixels in raster order
    part: tf.Tensor  # int32 [n_pixels]: each pixel's part, numbered in raster order
    count: tf.Tensor  # int32: how many parts
    top: tf.Tensor  # int32 [count] (each part's box: rows top..bottom-1, cols left..right-1)
    left: tf.Tensor
    bottom: tf.Tensor
    right: tf.Tensor
    mass: tf.Tensor  # float32 [count]: ink per part
    peak: tf.Tensor  # float32 [count]: strongest ink per part


def parts_of(mask: tf.Tensor, ink: tf.Tensor) -> Parts:
    height, width = tf.shape(mask)[0], tf.shape(mask)[1]
    numbers = tf.reshape(tf.range(1, height * width + 1, dtype=tf.float32), [height, width])
    start = tf.where(mask, numbers, 0.0)

    def spread(labels: tf.Tensor) -> tf.Tensor:
        pooled = tf.nn.max_pool2d(labels[None, :, :, None], 3, 1, "SAME")[0, :, :, 0]
        return tf.where(mask, pooled, 0.0)

    def changing(labels: tf.Tensor, previous: tf.Tensor) -> tf.Tensor:
        return tf.reduce_any(tf.not_equal(labels, previous))

    labels, _ = tf.while_loop(
        changing, lambda labels, _: (spread(labels), labels), (spread(start), start)
    )
    where = tf.where(mask)
    _, part = tf.unique(tf.gather_nd(labels, where))  # first seen first: raster order
    count = tf.reduce_max(part) + 1
    rows, cols = tf.cast(where[:, 0], tf.int32), tf.cast(where[:, 1], tf.int32)
    values = tf.gather_nd(ink, where)
    return Parts(
        where,
        part,
        count,
        tf.math.unsorted_segment_min(rows, part, count),
        tf.math.unsorted_segment_min(cols, part, count),
        tf.math.unsorted_segment_max(rows, part, count) + 1,
        tf.math.unsorted_segment_max(cols, part, count) + 1,
        tf.math.unsorted_segment_sum(values, part, count),
        tf.math.unsorted_segment_max(values, part, count),
    )


def digit_mask(mask: tf.Tensor, found: InkMap) -> tuple[tf.Tensor, tf.Tensor]:
    """gateway.digit_parts.digit_mask: the part of `mask` that is the digit, and "" — or an
    empty mask and the refusal sentence."""
    nothing = tf.zeros_like(mask)

    def some_ink() -> tuple[tf.Tensor, tf.Tensor]:
        parts = parts_of(mask, found.ink)
        sides = frame_sides(parts)
        one_plain_part = tf.logical_and(tf.equal(parts.count, 1), tf.logical_not(found.flat))
        chosen, refusal = tf.cond(
            one_plain_part,
            lambda: (mask, tf.where(tf.equal(sides[0], 4), REFUSAL_BLANK, "")),
            lambda: _choose(mask, found, parts, _frames(parts, sides)),
        )
        return chosen, refusal

    selected, refusal = tf.cond(
        tf.reduce_any(mask), some_ink, lambda: (nothing, tf.constant(REFUSAL_BLANK))
    )
    return tf.logical_and(selected, tf.equal(refusal, "")), refusal


def _choose(
    mask: tf.Tensor, found: InkMap, parts: Parts, frames: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    shallow, off_paper = tf.cond(
        found.flat,
        lambda: not_ink_on_paper(mask, found, parts),
        lambda: (tf.zeros([parts.count], tf.bool), tf.zeros([parts.count], tf.bool)),
    )
    background = tf.logical_or(frames, tf.logical_or(shallow, off_paper))
    # A texture is judged whole: every strong part but printed boxes and a desk's grain.
    strong = tf.logical_and(
        tf.logical_not(tf.logical_or(frames, shallow)), parts.peak >= FAINT_PEAK
    )
    pattern = tf.cond(
        tf.reduce_any(strong),
        lambda: patterned(_mask_of(parts, strong, mask)),
        lambda: tf.constant(False),
    )
    height, width = tf.shape(mask)[0], tf.shape(mask)[1]
    spans = tf.maximum(parts.bottom - parts.top, parts.right - parts.left)
    longer = tf.cast(tf.maximum(height, width), tf.float32)
    may_be_digit = tf.logical_and(
        tf.logical_not(background), tf.cast(spans, tf.float32) >= DIGIT_PART_SPAN * longer
    )
    keep = tf.where(
        tf.logical_or(tf.reduce_any(may_be_digit), found.flat),
        tf.logical_not(background),
        tf.ones([parts.count], tf.bool),
    )
    refusal = tf.where(
        tf.reduce_all(frames),
        REFUSAL_BLANK,  # an empty box
        tf.where(pattern, REFUSAL_PATTERN, tf.where(tf.reduce_any(keep), "", REFUSAL_BLANK)),
    )

    def selected() -> tf.Tensor:
        return _mask_of(parts, tf.logical_and(keep, near_the_heaviest(parts, keep, mask)), mask)

    chosen = tf.cond(tf.equal(refusal, ""), selected, lambda: tf.zeros_like(mask))
    return chosen, refusal


def _mask_of(parts: Parts, keep: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """The pixels of the parts kept."""
    pixels = tf.gather(keep, parts.part)
    return tf.scatter_nd(parts.where, pixels, tf.shape(mask, out_type=tf.int64))


def _per_line(parts: Parts, line: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
    """[count, length]: how many pixels of each part lie on each row (or column) `line`."""
    return tf.reshape(
        tf.math.unsorted_segment_sum(
            tf.ones_like(parts.part), parts.part * length + line, parts.count * length
        ),
        tf.stack([parts.count, length]),
    )


def _frames(parts: Parts, sides: tf.Tensor) -> tf.Tensor:
    """gateway.digit_parts.digit_mask's frames: a box, or two or three of its sides that
    hold another part."""
    full = tf.equal(sides, 4)
    some = tf.reshape(tf.where(tf.logical_and(sides >= 2, tf.logical_not(full))), [-1])
    index = tf.cast(some, tf.int32)[:, None]
    within = tf.logical_and(
        tf.logical_and(
            parts.top[None, :] >= tf.gather(parts.top, index),
            parts.left[None, :] >= tf.gather(parts.left, index),
        ),
        tf.logical_and(
            parts.bottom[None, :] <= tf.gather(parts.bottom, index),
            parts.right[None, :] <= tf.gather(parts.right, index),
        ),
    )
    others = tf.not_equal(tf.range(parts.count)[None, :], index)
    holds = tf.reduce_any(tf.logical_and(within, others), axis=1)
    return tf.logical_or(full, tf.scatter_nd(index, holds, [parts.count]))


def frame_sides(parts: Parts) -> tf.Tensor:
    """gateway.digit_parts.frame_sides, for every part at once."""
    rows, cols = tf.cast(parts.where[:, 0], tf.int32), tf.cast(parts.where[:, 1], tf.int32)
    height = parts.bottom - parts.top
    width = parts.right - parts.left
    shorter = tf.minimum(height, width)
    edge = tf.maximum(1, tf.cast(tf.round(FRAME_EDGE * tf.cast(shorter, tf.float32)), tf.int32))
    image_rows = tf.reduce_max(rows) + 1
    image_cols = tf.reduce_max(cols) + 1
    row_fill = (
        tf.cast(_per_line(parts, rows, image_rows), tf.float32)
        / tf.cast(width, tf.float32)[:, None]
    )
    col_fill = (
        tf.cast(_per_line(parts, cols, image_cols), tf.float32)
        / tf.cast(height, tf.float32)[:, None]
    )
    row_index = tf.range(image_rows)[None, :]
    col_index = tf.range(image_cols)[None, :]

    def fullest(fill: tf.Tensor, index: tf.Tensor, first: tf.Tensor, last: tf.Tensor) -> tf.Tensor:
        band = tf.logical_and(index >= first[:, None], index < last[:, None])
        return tf.reduce_max(tf.where(band, fill, 0.0), axis=1)

    full_sides = tf.reduce_sum(
        tf.cast(
            tf.stack(
                [
                    fullest(row_fill, row_index, parts.top, parts.top + edge),
                    fullest(row_fill, row_index, parts.bottom - edge, parts.bottom),
                    fullest(col_fill, col_index, parts.left, parts.left + edge),
                    fullest(col_fill, col_index, parts.right - edge, parts.right),
                ]
            )
            >= FRAME_FILL,
            tf.int32,
        ),
        axis=0,
    )
    own_top = tf.gather(parts.top + 2 * edge, parts.part)
    own_bottom = tf.gather(parts.bottom - 2 * edge, parts.part)
    own_left = tf.gather(parts.left + 2 * edge, parts.part)
    own_right = tf.gather(parts.right - 2 * edge, parts.part)
    inner = tf.logical_and(
        tf.logical_and(rows >= own_top, rows < own_bottom),
        tf.logical_and(cols >= own_left, cols < own_right),
    )
    inside_ink = tf.math.unsorted_segment_sum(tf.cast(inner, tf.float32), parts.part, parts.count)
    inside_area = tf.cast(
        tf.maximum(height - 4 * edge, 0) * tf.maximum(width - 4 * edge, 0), tf.float32
    )
    little_inside = tf.reduce_all(
        tf.stack(
            [
                shorter >= 6,
                inside_area > 0,
                inside_ink < FRAME_INSIDE * tf.maximum(inside_area, 1.0),
            ]
        ),
        axis=0,
    )
    return tf.where(little_inside, full_sides, 0)


def band_ink(profile: tf.Tensor) -> tf.Tensor:
    """gateway.digit_parts.band_ink: ink per band of a profile split at its empty entries."""
    inked = profile > 0
    previous = tf.concat([[False], inked[:-1]], axis=0)
    band = tf.cumsum(tf.cast(tf.logical_and(inked, tf.logical_not(previous)), tf.int32)) - 1
    return tf.math.unsorted_segment_sum(
        tf.boolean_mask(profile, inked),
        tf.boolean_mask(band, inked),
        num_segments=tf.maximum(tf.reduce_max(band) + 1, 1),
    )


def border_ring(mask: tf.Tensor) -> tf.Tensor:
    return tf.concat([mask[0], mask[1:, -1], mask[-1, -2::-1], mask[-2:0:-1, 0]], axis=0)


def border_runs(mask: tf.Tensor) -> tf.Tensor:
    ring = border_ring(mask)
    return tf.reduce_sum(
        tf.cast(tf.logical_and(ring, tf.logical_not(tf.roll(ring, 1, axis=0))), tf.int32)
    )


def patterned(mask: tf.Tensor) -> tf.Tensor:
    """gateway.digit_parts.patterned."""
    rows = tf.where(tf.reduce_any(mask, axis=1))[:, 0]
    cols = tf.where(tf.reduce_any(mask, axis=0))[:, 0]
    box = tf.cast(mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], tf.float32)
    bands = tf.reduce_sum(
        tf.cast(
            band_ink(tf.reduce_sum(box, axis=1)) >= MIN_BAND_SHARE * tf.reduce_sum(box), tf.int32
        )
    )
    return tf.logical_or(bands > MAX_BANDS, border_runs(mask) > MAX_BORDER_RUNS)


def not_ink_on_paper(mask: tf.Tensor, found: InkMap, parts: Parts) -> tuple[tf.Tensor, tf.Tensor]:
    """For every part at once: too shallow (a desk's grain), and not on paper
    (gateway.digit_parts.not_on_paper: a desk's edge, a shadow's tip)."""
    depth = tf.gather_nd(found.depth, parts.where)
    shallow = tf.math.unsorted_segment_max(depth, parts.part, parts.count) < (
        LEVEL_SHARE * tf.reduce_max(found.depth)
    )
    distance = inside_distance(mask)
    middles = tf.logical_and(mask, tf.equal(distance, _local_max(distance)))
    width = 2.0 * _median_per_part(
        tf.gather_nd(distance, parts.where), tf.gather_nd(middles, parts.where), parts
    )
    reach = tf.gather(tf.cast(tf.round(RIDGE_REACH * width), tf.int32) + 1, parts.part)
    rows, cols = tf.cast(parts.where[:, 0], tf.int32), tf.cast(parts.where[:, 1], tf.int32)
    page = found.page
    height, width_px = tf.shape(page)[0], tf.shape(page)[1]

    def page_at(y: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
        # Beyond the frame is no paper to lie on.
        inside = tf.logical_and(
            tf.logical_and(y >= 0, y < height), tf.logical_and(x >= 0, x < width_px)
        )
        at = tf.stack(
            [tf.clip_by_value(y, 0, height - 1), tf.clip_by_value(x, 0, width_px - 1)], axis=1
        )
        return tf.where(inside, tf.gather_nd(page, at), float("inf"))

    here = tf.gather_nd(page, parts.where)
    level = RIDGE_LEVEL * depth
    across = here - tf.maximum(page_at(rows, cols - reach), page_at(rows, cols + reach)) >= level
    down = here - tf.maximum(page_at(rows - reach, cols), page_at(rows + reach, cols)) >= level
    ridge = tf.cast(tf.logical_or(across, down), tf.float32)
    share = tf.math.unsorted_segment_mean(ridge, parts.part, parts.count)
    return shallow, share < RIDGE_SHARE


def _local_max(values: tf.Tensor) -> tf.Tensor:
    return tf.cast(window_max(tf.cast(values, tf.float32), tf.constant(3)), values.dtype)


def _median_per_part(values: tf.Tensor, chosen: tf.Tensor, parts: Parts) -> tf.Tensor:
    """numpy.median of the chosen int32 values of each part (every part has one)."""
    part = tf.boolean_mask(parts.part, chosen)
    value = tf.boolean_mask(values, chosen)
    order = tf.argsort(part * 65536 + value)
    ordered = tf.cast(tf.gather(value, order), tf.float32)
    counts = tf.math.unsorted_segment_sum(tf.ones_like(part), part, parts.count)
    starts = tf.cumsum(counts, exclusive=True)
    low = tf.gather(ordered, starts + (counts - 1) // 2)
    high = tf.gather(ordered, starts + counts // 2)
    return (low + high) / 2.0


def near_the_heaviest(parts: Parts, keep: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """gateway.digit_parts.near_the_heaviest: parts joining the heaviest one's box while any
    is near enough (the same parts, whatever the order they join in)."""
    main = tf.argmax(tf.where(keep, parts.mass, -1.0), output_type=tf.int32)
    main_span = tf.maximum(
        parts.bottom[main] - parts.top[main], parts.right[main] - parts.left[main]
    )
    reach = NEAR_PARTS * tf.cast(main_span, tf.float32)
    specks = parts.mass < SPECK_MASS * parts.mass[main]
    allowed = tf.where(specks, NEAR_SPECKS / NEAR_PARTS * reach, reach)
    start = tf.one_hot(main, parts.count, on_value=True, off_value=False)

    def grow(
        group: tf.Tensor, box: tf.Tensor, _: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        top, bottom, left, right = box[0], box[1], box[2], box[3]
        gap = tf.reduce_max(
            tf.stack(
                [top - parts.bottom, parts.top - bottom, left - parts.right, parts.left - right]
            ),
            axis=0,
        )
        joining = tf.logical_and(
            tf.logical_and(keep, tf.logical_not(group)), tf.cast(gap, tf.float32) <= allowed
        )
        group = tf.logical_or(group, joining)
        box = tf.stack(
            [
                tf.reduce_min(tf.boolean_mask(parts.top, group)),
                tf.reduce_max(tf.boolean_mask(parts.bottom, group)),
                tf.reduce_min(tf.boolean_mask(parts.left, group)),
                tf.reduce_max(tf.boolean_mask(parts.right, group)),
            ]
        )
        return group, box, tf.reduce_any(joining)

    box = tf.stack([parts.top[main], parts.bottom[main], parts.left[main], parts.right[main]])
    group, _, _ = tf.while_loop(
        lambda _group, _box, grown: grown, grow, (start, box, tf.constant(True))
    )
    height, width = tf.shape(mask)[0], tf.shape(mask)[1]
    at_edge = tf.reduce_any(
        tf.stack(
            [
                tf.minimum(parts.top, parts.left) == 0,
                parts.bottom == height,
                parts.right == width,
            ]
        ),
        axis=0,
    )
    weak = tf.logical_or(tf.logical_or(specks, parts.peak < FAINT_PEAK), at_edge)
    far_and_weak = tf.logical_and(tf.logical_not(group), weak)
    return tf.logical_or(group, tf.logical_and(keep, tf.logical_not(far_and_weak)))
