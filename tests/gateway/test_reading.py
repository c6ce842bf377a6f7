"""How gateway/reading.py finds a number's digits: grouping, order, touching digits, refusals,
on numbers drawn in code."""

import numpy as np
import pytest
from PIL import Image, ImageChops, ImageDraw

from contract import REFUSAL_BLANK, REFUSAL_PATTERN
from gateway.errors import NoDigitFound
from gateway.preprocessing import normalise_digit
from gateway.reading import (
    REFUSAL_TOO_MANY,
    REFUSAL_UNCLEAR,
    Candidates,
    best_reading,
    read_candidates,
)
from tests.drawings import draw_digit

HEIGHT = 100


def written(
    digits: str, gap: int | list[int] = 30, slope: float = 0.0, size: int = HEIGHT
) -> Image.Image:
    """Dark digits on white in a row, `gap` pixels apart (or the gaps between each pair; a
    negative gap overlaps them), each `slope` pixels lower per pixel to the right."""
    inks = [
        draw_digit(int(d), size=size, stroke=3).crop(draw_digit(int(d), size=size).getbbox())
        for d in digits
    ]
    gaps = gap if isinstance(gap, list) else [gap] * (len(inks) - 1)
    width = sum(ink.width for ink in inks) + sum(max(g, 0) for g in gaps) + 100
    page = Image.new("L", (width, size * 2 + int(abs(slope) * width)), 0)
    x = 50
    for ink, after in zip(inks, [*gaps, 0], strict=True):
        y = size // 2 + int(slope * x) + (int(abs(slope) * width) if slope < 0 else 0)
        layer = Image.new("L", page.size, 0)
        layer.paste(ink, (x, y))
        page = ImageChops.lighter(page, layer)
        x += ink.width + after
    return Image.eval(page, lambda v: 255 - v)


def lines(size: tuple[int, int], strokes: list[tuple[int, int, int, int]]) -> Image.Image:
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line(stroke, fill=0, width=6)
    return image


def groups(candidates: Candidates) -> list[tuple[int, int, int, int]]:
    """Each group's box read whole (its first reading when it has one piece)."""
    return [candidates.boxes[ways[0][0]] for ways in candidates.readings if len(ways[0]) == 1]


def test_digits_are_found_left_to_right_with_their_boxes_in_the_uploads_pixels() -> None:
    image = written("4271")

    candidates = read_candidates(image)

    boxes = groups(candidates)
    assert len(candidates.readings) == 4 and len(boxes) == 4
    lefts = [box[0] for box in boxes]
    assert lefts == sorted(lefts)
    ink = np.asarray(image) < 128
    for x0, y0, x1, y1 in boxes:  # each box holds ink and lies within the upload
        assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
        assert ink[y0:y1, x0:x1].sum() > 100
    # Between two boxes, no ink: each box holds a whole digit.
    for (_, _, right, _), (left, _, _, _) in zip(boxes, boxes[1:], strict=False):
        assert not ink[:, right:left].any()


def test_a_sloping_line_still_reads_in_order() -> None:
    for slope in (0.15, -0.15):
        candidates = read_candidates(written("123456", slope=slope))
        boxes = groups(candidates)
        assert len(boxes) == 6
        assert [box[0] for box in boxes] == sorted(box[0] for box in boxes)
        tops = [box[1] for box in boxes]
        assert (tops[-1] > tops[0]) == (slope > 0)  # the line really slopes


def test_a_detached_flag_a_broken_stroke_and_a_dot_belong_to_their_digit() -> None:
    five_with_flag = [(40, 40, 90, 30), (40, 50, 40, 100), (40, 100, 85, 150), (85, 150, 35, 190)]
    broken_one = [(160, 30, 160, 105), (160, 120, 160, 190)]
    one_with_dot = [(240, 70, 240, 190), (238, 40, 242, 44)]
    image = lines((300, 220), five_with_flag + broken_one + one_with_dot)

    candidates = read_candidates(image)

    assert len(groups(candidates)) == 3


def test_specks_between_digits_are_not_digits() -> None:
    image = written("38", gap=60)
    ImageDraw.Draw(image).ellipse((image.width // 2 - 3, 120, image.width // 2 + 3, 126), fill=0)

    assert len(read_candidates(image).readings) == 2


def test_touching_digits_are_also_read_cut_apart_and_the_model_chooses() -> None:
    image = written("400", gap=[40, -8])  # the two zeros' ink overlaps

    candidates = read_candidates(image)

    _, ways = candidates.readings  # the zeros are one group of ink...
    assert 1 in [len(way) for way in ways]
    cuts = [way for way in ways if len(way) == 2]  # ...also read as two digits
    left, right = (candidates.boxes[i] for i in cuts[0])
    assert left[0] < right[0] and left[2] < right[2]
    confident = np.full(len(candidates.boxes), 0.99)
    unsure_whole = confident.copy()
    unsure_whole[ways[0]] = 0.3
    assert len(best_reading(candidates, unsure_whole)) == 3
    unsure_cuts = np.full(len(candidates.boxes), 0.5)
    unsure_cuts[[candidates.readings[0][0][0], ways[0][0]]] = 0.999
    assert len(best_reading(candidates, unsure_cuts)) == 2


def test_a_lone_digit_is_normalised_exactly_as_predict_normalises_it() -> None:
    image = written("7")

    candidates = read_candidates(image)

    (ways,) = candidates.readings
    assert ways[0] == [0]  # read whole first (also cut apart, in case it is digits that touch)
    assert np.array_equal(candidates.images[0], normalise_digit(image))


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (Image.new("L", (400, 100), 250), REFUSAL_BLANK),
        (written("1234567890" * 3, gap=20, size=40), REFUSAL_TOO_MANY),
    ],
)
def test_no_number_or_too_many_digits_is_refused_with_a_reason(
    image: Image.Image, reason: str
) -> None:
    with pytest.raises(NoDigitFound) as refused:
        read_candidates(image)
    assert refused.value.detail == reason


def test_several_unsure_digits_are_not_a_number_but_a_lone_digit_is_answered() -> None:
    several = read_candidates(written("314"))
    lone = read_candidates(written("3"))

    with pytest.raises(NoDigitFound) as refused:
        best_reading(several, np.full(len(several.boxes), 0.6))
    assert refused.value.detail == REFUSAL_UNCLEAR
    assert best_reading(lone, np.full(len(lone.boxes), 0.2)) == [0]


def test_candidates_never_exceed_what_the_model_server_takes_in_one_call() -> None:
    image = written("0000000000", gap=-6, size=60)  # one long group: many ways to cut it

    everything = read_candidates(image)
    capped = read_candidates(image, most=12)

    assert len(everything.boxes) > 12 >= len(capped.boxes) == len(capped.images)
    assert all(ways for ways in capped.readings)  # each group keeps a reading


def test_hundreds_of_separate_marks_are_a_texture_refused_at_once() -> None:
    dots = Image.new("L", (900, 300), 255)
    draw = ImageDraw.Draw(dots)
    rng = np.random.default_rng(0)
    for x, y in rng.uniform((20, 20), (874, 274), (400, 2)):  # scattered: no rows, no border
        draw.ellipse((x, y, x + 6, y + 6), fill=0)

    with pytest.raises(NoDigitFound) as refused:
        read_candidates(dots)
    assert refused.value.detail == REFUSAL_PATTERN
