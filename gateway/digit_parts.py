"""Which ink is the digit: its 8-connected parts, with what is not the digit left out.

Left out: a box printed round the digit (a form field), also when faint lines show only two
or three of its sides; specks and stray marks away from it; and in photos, what is dark
without being ink on paper (the edge of a desk or a note, the tip of a shadow, the grain of
a desk). The digit is the heaviest remaining part with the
parts near it; other big parts stay, so that several digits are still refused as such.
The same rules run in the SavedModel's graph (training/graph_preprocessing.py).
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

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
from gateway.ink import FlatField, inside_distance

EIGHT_CONNECTED = np.ones((3, 3), bool)


@dataclass(frozen=True, slots=True)
class Parts:
    labels: np.ndarray  # int32 [h, w]: 0 for no ink, i + 1 for part i
    boxes: list[tuple[slice, slice]]
    mass: np.ndarray  # ink per part
    peak: np.ndarray  # strongest ink per part

    def mask(self, keep: np.ndarray) -> np.ndarray:
        return np.asarray(np.concatenate([[False], keep])[self.labels])

    def part(self, index: int) -> np.ndarray:
        rows, cols = self.boxes[index]
        return np.asarray(self.labels[rows, cols] == index + 1)


def parts_of(ink: np.ndarray, labels: np.ndarray, count: int) -> Parts:
    boxes = ndimage.find_objects(labels)
    mass = np.bincount(labels.ravel(), weights=ink.ravel(), minlength=count + 1)[1:]
    # Box by box: scipy's per-label maximum sorts every pixel.
    peak = np.array([ink[box][labels[box] == i + 1].max() for i, box in enumerate(boxes)])
    return Parts(labels, boxes, mass, peak)


def ink_box(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The rows and columns that hold ink, None for none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)) if rows.size else None


def digit_mask(
    mask: np.ndarray,
    within: tuple[slice, slice],
    ink: np.ndarray,
    flat_field: FlatField | None,
    whole_line: bool = False,
) -> np.ndarray | str:
    """The part of `mask` (ink >= threshold, all of it `within` that box) that is the digit,
    `mask` itself when it is all digit, or the refusal sentence when there is none. With
    `whole_line`, every part that may be ink of digits is kept (a number's, gateway.reading)."""
    # Labelled within the ink's box only: the cost of a canvas's margin saved.
    box_labels, count = ndimage.label(mask[within], structure=EIGHT_CONNECTED)
    if count == 1 and flat_field is None:  # one part on one paper level: it is all there is
        return REFUSAL_BLANK if frame_sides(mask[within]) == 4 else mask
    labels = np.zeros(mask.shape, box_labels.dtype)
    labels[within] = box_labels
    parts = parts_of(ink, labels, count)
    sides = np.array([frame_sides(parts.part(i)) for i in range(count)])
    # A box, or the sides of one that the light left: then it holds the digit.
    frames = sides == 4
    for candidate in np.flatnonzero((sides >= 2) & ~frames):
        frames[candidate] = holds_another(parts, int(candidate))
    if frames.all():
        return REFUSAL_BLANK  # an empty box
    background, shallow = frames.copy(), np.zeros(count, bool)
    if flat_field is not None:
        deepest = float(flat_field.depth.max())
        # Parts never touch, so each part's inside distance is the whole mask's.
        distance = inside_distance(mask)
        middles = mask & (distance == ndimage.maximum_filter(distance, size=3))
        for i in range(count):
            shallow[i] = (
                flat_field.depth[parts.boxes[i]][parts.part(i)].max() < LEVEL_SHARE * deepest
            )
            background[i] |= shallow[i] or not_on_paper(parts, i, flat_field, distance, middles)
    # A texture is judged whole: every strong part but printed boxes and a desk's grain.
    strong = ~frames & ~shallow & (parts.peak >= FAINT_PEAK)
    if strong.any() and patterned(parts.mask(strong)):
        return REFUSAL_PATTERN
    height, width = mask.shape
    spans = np.array([max(r.stop - r.start, c.stop - c.start) for r, c in parts.boxes])
    may_be_digit = ~background & (spans >= DIGIT_PART_SPAN * max(height, width))
    # Nothing else there: what spans the frame may be the digit itself (frame-filling,
    # enlarged), but never in a photo, where it is the desk or a shadow's edge.
    keep = ~background if may_be_digit.any() or flat_field is not None else np.ones(count, bool)
    if not keep.any():
        return REFUSAL_BLANK
    if not whole_line:
        keep &= near_the_heaviest(parts, keep, mask.shape)
    return mask if keep.all() else parts.mask(keep)


def frame_sides(part: np.ndarray) -> int:
    """How many sides of a box printed in straight lines the part has (a full row at its top
    or bottom, a full column at its left or right), 0 unless it has little inside."""
    height, width = part.shape
    if min(height, width) < 6:
        return 0
    edge = max(1, round(FRAME_EDGE * min(height, width)))
    inside = part[2 * edge : -2 * edge, 2 * edge : -2 * edge]
    if not inside.size or np.count_nonzero(inside) >= FRAME_INSIDE * inside.size:
        return 0
    rows, cols = np.count_nonzero(part, axis=1), np.count_nonzero(part, axis=0)
    across = (
        rows[:edge].max() / width,
        rows[-edge:].max() / width,
        cols[:edge].max() / height,
        cols[-edge:].max() / height,
    )
    return sum(int(fill >= FRAME_FILL) for fill in across)


def holds_another(parts: Parts, index: int) -> bool:
    """Another part lies within the part's box."""
    rows, cols = parts.boxes[index]
    return any(
        j != index
        and r.start >= rows.start
        and r.stop <= rows.stop
        and c.start >= cols.start
        and c.stop <= cols.stop
        for j, (r, c) in enumerate(parts.boxes)
    )


def patterned(mask: np.ndarray) -> bool:
    """The pattern test of not_one_digit, on every strong part at once: four or more bands
    of rows, or ink entering the border again and again."""
    box = mask[ink_box(mask) or ()]
    bands = int((band_ink(box.sum(axis=1)) >= MIN_BAND_SHARE * box.sum()).sum())
    return bands > MAX_BANDS or border_runs(border_ring(mask)) > MAX_BORDER_RUNS


def not_on_paper(
    parts: Parts, index: int, flat_field: FlatField, distance: np.ndarray, middles: np.ndarray
) -> bool:
    """In a photo: not darker than the page on both sides a few of its stroke widths away,
    as the edge of a desk or the tip of a shadow is not. `distance` is the mask's inside
    distance, `middles` its local maxima (the strokes' middles)."""
    part = parts.part(index)
    rows, cols = parts.boxes[index]
    depth = flat_field.depth[rows, cols][part]
    stroke = 2 * float(np.median(distance[rows, cols][part & middles[rows, cols]]))
    reach = round(RIDGE_REACH * stroke) + 1
    ys, xs = np.nonzero(part)
    ys, xs = ys + rows.start, xs + cols.start
    page = flat_field.page
    height, width = page.shape

    def page_at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        # Beyond the frame is no paper to lie on.
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        return np.where(inside, page[np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)], np.inf)

    here, level = page[ys, xs], RIDGE_LEVEL * depth
    across = here - np.maximum(page_at(ys, xs - reach), page_at(ys, xs + reach)) >= level
    down = here - np.maximum(page_at(ys - reach, xs), page_at(ys + reach, xs)) >= level
    return bool((across | down).mean() < RIDGE_SHARE)


def near_the_heaviest(parts: Parts, keep: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The heaviest kept part, the parts near it (grown part by part), and the far parts
    that are neither specks, nor faint, nor at the image's edge."""
    height, width = shape
    mass = np.where(keep, parts.mass, -1.0)
    main = int(np.argmax(mass))
    top, left = parts.boxes[main][0].start, parts.boxes[main][1].start
    bottom, right = parts.boxes[main][0].stop, parts.boxes[main][1].stop
    reach = NEAR_PARTS * max(bottom - top, right - left)
    specks = parts.mass < SPECK_MASS * parts.mass[main]
    group = np.zeros(len(keep), bool)
    group[main] = True
    grown = True
    while grown:
        grown = False
        for j in np.flatnonzero(keep & ~group):
            rows, cols = parts.boxes[j]
            gap = max(top - rows.stop, rows.start - bottom, left - cols.stop, cols.start - right)
            if gap <= (NEAR_SPECKS / NEAR_PARTS * reach if specks[j] else reach):
                group[j] = grown = True
                top, bottom = min(top, rows.start), max(bottom, rows.stop)
                left, right = min(left, cols.start), max(right, cols.stop)
    at_edge = np.array(
        [min(r.start, c.start) == 0 or r.stop == height or c.stop == width for r, c in parts.boxes]
    )
    far_and_weak = ~group & (specks | (parts.peak < FAINT_PEAK) | at_edge)
    return np.asarray(group | (keep & ~far_and_weak))


def border_ring(mask: np.ndarray) -> np.ndarray:
    """The image's outermost pixels, in order round the frame."""
    return np.concatenate([mask[0], mask[1:, -1], mask[-1, -2::-1], mask[-2:0:-1, 0]])


def border_runs(ring: np.ndarray) -> int:
    """How many separate times the ink enters the image's border (`ring`, of border_ring)."""
    return int((ring & ~np.concatenate((ring[-1:], ring[:-1]))).sum())


def band_ink(profile: np.ndarray) -> np.ndarray:
    """Ink per band of a profile (ink per column or row) split at its empty entries."""
    inked = profile > 0
    starts = inked & ~np.concatenate([[False], inked[:-1]])
    band = np.cumsum(starts) - 1
    return np.bincount(band[inked], weights=profile[inked])
