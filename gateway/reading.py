"""Reading a number: the digits of one line of handwriting (or print), left to right.

The page's ink is found as for /predict (gateway.preprocessing.page_ink, at a finer work size
so that each of many digits keeps its pixels), and what is not ink of digits is left out as for
/predict (gateway.digit_parts.digit_mask: boxes, shadows' and desks' edges, textures). The
remaining 8-connected parts are grouped into digits: parts that share their columns belong to
one digit (a 5's flag, a 4's detached stroke, a broken pen line, a dot over a 1); light parts
of their own are specks and go, and so do marks much shorter than the line (dashes, bits of
ruled lines). A group too wide for one digit may be digits that touch, cut where its column
profile holds the least ink; since a wide digit (a flat 2, a sprawling 0) looks the same, each
wide group is sent both whole and cut, and the model's confidences choose (best_reading), all
in the one call. Each digit is normalised as /predict normalises one; a lone digit that
/predict would read is read exactly as /predict reads it.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from contract import REFUSAL_BLANK, REFUSAL_PATTERN, SPECK_MASS
from gateway.digit_parts import EIGHT_CONNECTED, digit_mask
from gateway.errors import NoDigitFound
from gateway.preprocessing import digit_image, normalise_digit, page_ink

MAX_DIGITS = 20
# More separate marks than this are a texture or noise, not a number (and would cost the
# grouping, which compares every pair, more than a request should).
MAX_PARTS = 200
# The most candidate digits of one upload: what TF Serving takes in one request
# (serving/batching.config's max_batch_size, the gateway's GATEWAY_MAX_BATCH).
MAX_CANDIDATES = 64
# Twice /predict's work size: ten digits in a row keep about 20 pixels of height each.
READ_WORK_SIZE = 224
# Parts sharing this much of the narrower one's columns are one digit, and so are parts that
# share columns and at most STACKED_ROWS of the shorter one's rows, or columns only when the
# shorter is at most SMALL of the taller one's height.
SHARED_COLUMNS = 0.5
STACKED_ROWS = 0.5
SMALL = 0.4
# ...and no more than NEAR_ROWS of the taller one's height apart (a speck above a digit is not
# part of it).
NEAR_ROWS = 0.25
# Groups shorter than MIN_HEIGHT of the line (the median height of those with HEAVY of the
# heaviest's ink) are not digits.
MIN_HEIGHT = 0.5
HEAVY = 0.3
# A group wider than this share of the line's height may be digits that touch: it is also
# read cut into as many pieces as fit, each at least MIN_PIECE of the line's height wide.
MAY_TOUCH = 1.2
MIN_PIECE = 0.25
# Digits are about DIGIT_WIDTH of the line's height wide; none is wider than ONE_WIDE.
DIGIT_WIDTH = 0.65
ONE_WIDE = 1.8
# A cut lies within this share of a piece's width of where equal widths put it.
CUT_WINDOW = 0.3
# The log-odds a reading with one more digit must win by (cuts in a wide digit read well too),
# and what each line's height of a digit's width beyond the line's height costs.
CUT_COST = 0.25
WIDE_COST = 0.5
# Several digits less likely than this to be all right are not a number (a line of text reads
# as digits, each unsure). Tuned on the train split's numbers and text lines.
MIN_NUMBER_CONFIDENCE = 0.5
REFUSAL_UNCLEAR = (
    "No number found: the marks do not read clearly as digits; send a number written in one "
    "row, digits apart or touching a little."
)
REFUSAL_TOO_MANY = (
    f"No number found: the image holds more than {MAX_DIGITS} marks that look like digits; "
    f"send one number of at most {MAX_DIGITS} digits in one row."
)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in the upload's pixels


@dataclass(frozen=True, slots=True)
class Candidates:
    """Every way of reading a number's digit groups, for one call to the model."""

    images: np.ndarray  # [n, 28, 28] float32: each candidate digit as the model takes it
    boxes: list[Box]  # each candidate's place
    widths: np.ndarray  # each candidate's width, as a share of the line's height
    readings: list[list[list[int]]]  # per group, left to right: its readings (candidates)


@dataclass(frozen=True, slots=True)
class _Group:
    rows: slice
    cols: slice
    keep: np.ndarray  # the group's pixels within its box

    @property
    def height(self) -> int:
        return int(self.rows.stop - self.rows.start)

    @property
    def width(self) -> int:
        return int(self.cols.stop - self.cols.start)


def read_candidates(
    image: Image.Image, most: int = MAX_CANDIDATES, upload_scale: float = 1.0
) -> Candidates:
    """The candidate digits of a grayscale image, group by group, left to right, at most
    `most` of them (the model server's batch); their boxes in the pixels of an upload
    `upload_scale` times the image's size (a JPEG decoded smaller).

    Raises:
        NoDigitFound: no digits (blank, noise, a texture, filled areas) or more than MAX_DIGITS.
    """
    page = page_ink(image, READ_WORK_SIZE)
    ink = page.found.ink
    mask = digit_mask(page.mask, page.within, ink, page.found.flat_field, whole_line=True)
    if isinstance(mask, str):
        raise NoDigitFound(mask)
    groups = digit_groups(mask, ink)
    if len(groups) > MAX_DIGITS:
        raise NoDigitFound(REFUSAL_TOO_MANY)
    if not groups:
        raise NoDigitFound(REFUSAL_BLANK)
    line = float(np.median([group.height for group in groups]))
    lone = None
    if len(groups) > 1:
        ways = [_ways(group, line) for group in groups]
    else:
        try:  # one digit as /predict reads it; else perhaps digits that touch
            lone = normalise_digit(image)
            ways = [[groups]]
        except NoDigitFound:
            ways = [[way for way in _ways(groups[0], line) if len(way) > 1]]
            if not ways[0]:
                raise
    while sum(len(way) for g in ways for way in g) > most and max(map(len, ways)) > 1:
        max(ways, key=len).pop()  # the last ways of the most ambiguous group go first
    pieces = [piece for group_ways in ways for way in group_ways for piece in way]
    images = (
        [lone] if lone is not None else [digit_image(ink[p.rows, p.cols], p.keep) for p in pieces]
    )
    readings, start = [], 0
    for group_ways in ways:
        readings.append([list(range(start, start := start + len(way))) for way in group_ways])
    s = page.scale * upload_scale
    width, height = (round(side * upload_scale) for side in image.size)
    boxes = [
        (
            round(p.cols.start * s),
            round(p.rows.start * s),
            min(round(p.cols.stop * s), width),
            min(round(p.rows.stop * s), height),
        )
        for p in pieces
    ]
    widths = np.array([p.width / line for p in pieces])
    return Candidates(np.stack(images), boxes, widths, readings)


def best_reading(candidates: Candidates, confidences: np.ndarray) -> list[int]:
    """The candidates read as the number, left to right: per group, the reading likeliest
    right, each cut costing CUT_COST in log-odds and each digit wider than the line's height
    WIDE_COST for every line's height more.

    Raises:
        NoDigitFound: the best readings hold more than MAX_DIGITS digits, or several digits
            that are all right with less than MIN_NUMBER_CONFIDENCE (text, scribbles); a lone
            digit is answered whatever its confidence, as /predict answers it.
    """
    scores = np.log(np.maximum(confidences, 1e-9))
    scores -= WIDE_COST * np.maximum(candidates.widths - 1.0, 0.0) + CUT_COST
    chosen = [max(ways, key=lambda way: float(scores[way].sum())) for ways in candidates.readings]
    digits = [index for way in chosen for index in way]
    if len(digits) > MAX_DIGITS:
        raise NoDigitFound(REFUSAL_TOO_MANY)
    if len(digits) > 1 and np.prod(confidences[digits]) < MIN_NUMBER_CONFIDENCE:
        raise NoDigitFound(REFUSAL_UNCLEAR)
    return digits


def digit_groups(mask: np.ndarray, ink: np.ndarray) -> list[_Group]:
    """The digits among the mask's parts (parts sharing columns joined, specks left out),
    left to right.

    Raises:
        NoDigitFound: more than MAX_PARTS separate marks (a texture)."""
    labels, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
    if not count:
        return []
    if count > MAX_PARTS:
        raise NoDigitFound(REFUSAL_PATTERN)
    boxes = ndimage.find_objects(labels)
    mass = np.bincount(labels.ravel(), weights=ink.ravel(), minlength=count + 1)[1:]
    left = np.array([cols.start for _, cols in boxes])
    right = np.array([cols.stop for _, cols in boxes])
    top = np.array([rows.start for rows, _ in boxes])
    bottom = np.array([rows.stop for rows, _ in boxes])
    columns = np.minimum.outer(right, right) - np.maximum.outer(left, left)
    narrower = np.minimum.outer(right - left, right - left)
    rows = np.minimum.outer(bottom, bottom) - np.maximum.outer(top, top)
    shorter = np.minimum.outer(bottom - top, bottom - top)
    # One above the other (a broken stroke, a dot) or a small one in the other's columns (a
    # 5's flag), or one within the other's columns.
    taller = np.maximum.outer(bottom - top, bottom - top)
    near = -rows <= NEAR_ROWS * taller  # rows is negative for the gap between them
    stacked = (
        (columns > 0) & near & ((rows <= STACKED_ROWS * shorter) | (shorter <= SMALL * taller))
    )
    together = stacked | (near & (columns >= SHARED_COLUMNS * narrower))
    owner = _components(together)
    group_mass = np.bincount(owner, weights=mass)
    typical = np.median(group_mass[group_mass >= SPECK_MASS * group_mass.max()])
    kept = np.flatnonzero(group_mass >= SPECK_MASS * typical)
    groups = []
    for g in kept:
        members = np.flatnonzero(owner == g)
        ys = slice(int(top[members].min()), int(bottom[members].max()))
        xs = slice(int(left[members].min()), int(right[members].max()))
        groups.append(_Group(ys, xs, np.isin(labels[ys, xs], members + 1)))
    # Digits of one number are about as tall: shorter marks are dashes, bits of ruled lines.
    heavy = group_mass[kept] >= HEAVY * group_mass[kept].max()
    line = np.median([g.height for g, is_heavy in zip(groups, heavy, strict=True) if is_heavy])
    groups = [group for group in groups if group.height >= MIN_HEIGHT * line]
    return sorted(groups, key=lambda group: group.cols.start + group.cols.stop)


def _components(linked: np.ndarray) -> np.ndarray:
    """Each part's group (the index of its first member) under the symmetric relation
    `linked`: squared until closed (a handful of parts: cheaper than a graph library's checks)."""
    reach = (linked | np.eye(len(linked), dtype=bool)).astype(np.float32)
    while True:
        grown = (reach @ reach > 0).astype(np.float32)
        if np.array_equal(grown, reach):
            return np.asarray(reach.argmax(axis=1))
        reach = grown


def _ways(group: _Group, line: float) -> list[list[_Group]]:
    """The ways a group may be read: whole, cut into about as many digits as fit at
    DIGIT_WIDTH each at the columns of least ink near equal widths, and cut in two at its
    column of least ink (a 1 touching an 8 is not cut in the middle)."""
    if group.width <= MAY_TOUCH * line:
        return [[group]]
    margin = max(1, round(MIN_PIECE * line))
    most = max(1, group.width // margin)
    likely = round(group.width / (DIGIT_WIDTH * line))
    counts = {k for k in (likely - 1, likely, likely + 1) if 1 <= k <= most}
    if group.width <= ONE_WIDE * line:
        counts.add(1)
    profile = group.keep.sum(axis=0).astype(np.float64)
    ways = [_cut_at(group, _even_cuts(profile, count)) for count in sorted(counts)]
    inner = profile[margin : group.width - margin]
    if inner.size:
        ways.append(_cut_at(group, [margin + int(np.argmin(inner))]))
    return ways


def _even_cuts(profile: np.ndarray, count: int) -> list[int]:
    """Where `count` digits of about equal width part: near each boundary, the column of
    least ink."""
    pitch = len(profile) / count
    cuts = [0]
    for j in range(1, count):
        expected = j * pitch
        low = max(cuts[-1] + 1, round(expected - CUT_WINDOW * pitch))
        high = min(len(profile) - 1, round(expected + CUT_WINDOW * pitch))
        if low > high:
            break
        window = profile[low : high + 1] + 1e-3 * np.abs(np.arange(low, high + 1) - expected)
        cuts.append(low + int(np.argmin(window)))
    return cuts[1:]


def _cut_at(group: _Group, cuts: list[int]) -> list[_Group]:
    """The group cut at these columns (its own, from 0), left to right."""
    edges = [0, *cuts, group.width]
    pieces = []
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        rows = np.flatnonzero(group.keep[:, start:stop].any(axis=1))
        if rows.size:
            top, bottom = group.rows.start + rows[0], group.rows.start + rows[-1] + 1
            cols = slice(group.cols.start + start, group.cols.start + stop)
            keep = group.keep[rows[0] : rows[-1] + 1, start:stop]
            pieces.append(_Group(slice(top, bottom), cols, keep))
    return pieces
