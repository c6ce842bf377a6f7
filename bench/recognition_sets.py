"""Uploads people really send, made in code: legible digits of many kinds, and things that
are not one digit. The recognition benchmark and CI's accuracy check measure the stack on them.

Legible digits are MNIST digits (the test split for reports, the held-back end of the train
split for tuning) rendered the way uploads arrive, one maker per kind in LEGIBLE. Two kinds,
digits by writers outside MNIST and whiteboard photos, decide nothing and are read only for
the report (HELD_OUT).
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import ndimage

from bench.digits import encode
from training.data import HOLDOUT_EXAMPLES

Maker = Callable[[np.ndarray, np.random.Generator], Image.Image]


@dataclass(frozen=True)
class Upload:
    kind: str
    data: bytes
    # A digit; for /read, the number as its digits ("4271"); None: the stack should refuse it.
    label: int | str | None


def _tight(digit: np.ndarray) -> Image.Image:
    """The digit (white on black, uint8) cropped to its ink."""
    rows = np.flatnonzero(digit.max(axis=1) > 30)
    cols = np.flatnonzero(digit.max(axis=0) > 30)
    return Image.fromarray(digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def _scaled(digit: np.ndarray, height: int, bold: float = 0.0) -> Image.Image:
    """White-on-black ink `height` pixels tall, smoothly enlarged, each stroke widened on both
    sides by `bold` of the height (MNIST's pen is about a tenth of the height wide)."""
    ink = _tight(digit)
    width = max(1, round(ink.width * height / ink.height))
    ink = ink.resize((width, height), Image.Resampling.BICUBIC)
    for _ in range(
        round(bold * height)
    ):  # k 3x3 passes: the same dilation as one (2k+1) window, far cheaper
        ink = ink.filter(ImageFilter.MaxFilter(3))
    return ink


def _on_canvas(
    ink: Image.Image, size: tuple[int, int], at: tuple[int, int], dark_on_light: bool = True
) -> Image.Image:
    canvas = Image.new("L", size, 0)
    canvas.paste(ink, at)
    return Image.eval(canvas, lambda v: 255 - v) if dark_on_light else canvas


def _margin(rng: np.random.Generator, room: int) -> int:
    return int(rng.integers(0, max(1, room) + 1))


def _ink_somewhere(
    digit: np.ndarray,
    rng: np.random.Generator,
    heights: tuple[int, int],
    bolds: tuple[float, float],
    size: tuple[int, int],
) -> tuple[Image.Image, tuple[int, int]]:
    """The digit at a random height and boldness, cut to fit `size`, and a random place for
    it there."""
    ink = _scaled(digit, int(rng.integers(*heights)), bold=float(rng.uniform(*bolds)))
    ink = ink.crop((0, 0, min(ink.width, size[0]), min(ink.height, size[1])))
    return ink, (_margin(rng, size[0] - ink.width), _margin(rng, size[1] - ink.height))


def _drawn(
    heights: tuple[int, int],
    bolds: tuple[float, float],
    side: int,
    dark_on_light: bool,
    digit: np.ndarray,
    rng: np.random.Generator,
) -> Image.Image:
    """The digit drawn at a random height, boldness and place on a `side`-pixel square."""
    ink, at = _ink_somewhere(digit, rng, heights, bolds, (side, side))
    return _on_canvas(ink, (side, side), at, dark_on_light)


# A thick marker across most of a 280x280 canvas, dark on white.
canvas_bold = partial(_drawn, (170, 250), (0.02, 0.045), 280, True)
# A small digit on a big page: 8-14% of a 400x400 page's height.
tiny = partial(_drawn, (32, 56), (0, 0.03), 400, True)
# Thick white strokes on black, as dark-mode drawing apps export them.
white_on_black_marker = partial(_drawn, (150, 240), (0.025, 0.05), 280, False)


def canvas_transparent(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A canvas export: dark strokes whose alpha is the ink, on a transparent background."""
    ink, at = _ink_somewhere(digit, rng, (150, 250), (0.01, 0.04), (280, 280))
    alpha = Image.new("L", (280, 280), 0)
    alpha.paste(ink, at)
    colour = tuple(int(c) for c in rng.integers(0, 60, 3))
    image = Image.new("RGBA", (280, 280), (*colour, 0))
    image.putalpha(alpha)
    return image


def frame_filling(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Ink from edge to edge: the digit's box is the picture, give or take a pixel or two."""
    height = int(rng.integers(120, 300))
    ink = _scaled(digit, height, bold=float(rng.uniform(0, 0.03)))
    pad = int(rng.integers(0, 3))
    return _on_canvas(ink, (ink.width + 2 * pad, ink.height + 2 * pad), (pad, pad))


def off_centre(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A third-of-the-page digit pushed into a corner of a landscape page."""
    height = int(rng.integers(80, 130))
    ink = _scaled(digit, height, bold=float(rng.uniform(0, 0.03)))
    x = int(rng.choice([rng.integers(0, 20), 400 - ink.width - rng.integers(0, 20)]))
    y = int(rng.choice([rng.integers(0, 20), 300 - ink.height - rng.integers(0, 20)]))
    return _on_canvas(ink, (400, 300), (max(0, x), max(0, y)))


def low_resolution(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """An 8-16 px original enlarged with smoothing; ink reaches the frame's edges."""
    small = int(rng.integers(8, 17))
    ink = _tight(digit)
    low = ink.resize((max(2, round(ink.width * small / ink.height)), small), Image.Resampling.BOX)
    scale = int(rng.integers(6, 20))
    filter_ = Image.Resampling.BILINEAR if rng.random() < 0.5 else Image.Resampling.BICUBIC
    big = low.resize((low.width * scale, low.height * scale), filter_)
    return Image.eval(big, lambda v: 255 - v) if rng.random() < 0.5 else big


def paper_photo(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Ink on paper under uneven light, with sensor noise, as a 640x480 phone JPEG."""
    height = int(rng.integers(150, 330))
    bold = float(rng.uniform(0, 0.02))
    ink = np.asarray(_scaled(digit, height, bold), np.float32) / 255
    if ink.shape[1] > 640:  # a very wide digit: as tall as the page's width allows
        ink = np.asarray(_scaled(digit, height * 640 // ink.shape[1], bold), np.float32) / 255
    page = np.full((480, 640), float(rng.integers(185, 235)), np.float32)
    slope = rng.uniform(-0.06, 0.06, 2)
    rows, cols = np.mgrid[:480, :640]
    page += (slope[0] * rows + slope[1] * cols).astype(np.float32)
    top = _margin(rng, 480 - ink.shape[0])
    left = _margin(rng, 640 - ink.shape[1])
    region = page[top : top + ink.shape[0], left : left + ink.shape[1]]
    region[:] = region * (1 - ink) + float(rng.integers(20, 70)) * ink
    page += rng.normal(0, 4, page.shape).astype(np.float32)
    return Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))


# Paper under real light ----------------------------------------------------------------------


def _paper(rng: np.random.Generator, height: int = 480, width: int = 640) -> np.ndarray:
    """A sheet of paper filling the frame, lit a little unevenly (float grey levels)."""
    page = np.full((height, width), float(rng.integers(195, 240)), np.float32)
    slope = rng.uniform(-0.05, 0.05, 2)
    rows, cols = np.mgrid[:height, :width]
    return np.asarray(page + (slope[0] * rows + slope[1] * cols), np.float32)


def _write(page: np.ndarray, ink: Image.Image, at: tuple[int, int], level: float) -> None:
    """Dark ink `level` grey written onto `page` (in place) with its top-left corner `at`."""
    alpha = np.asarray(ink, np.float32) / 255
    top, left = at
    region = page[top : top + alpha.shape[0], left : left + alpha.shape[1]]
    alpha = alpha[: region.shape[0], : region.shape[1]]
    region[:] = region * (1 - alpha) + level * alpha


def _photo(page: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Sensor noise, then 8-bit: what the phone's JPEG encoder gets."""
    page = page + rng.normal(0, 3.5, page.shape).astype(np.float32)
    mode = "RGB" if page.ndim == 3 else "L"
    return Image.fromarray(np.clip(page, 0, 255).astype(np.uint8), mode)


def _digit_on_page(
    digit: np.ndarray, rng: np.random.Generator, page: np.ndarray, height: int
) -> tuple[int, int, int, int]:
    """Write the digit `height` pixels tall somewhere on `page`; returns its box
    (top, left, bottom, right)."""
    return _ink_on_page(_scaled(digit, height, bold=float(rng.uniform(0, 0.025))), rng, page)


def _ink_on_page(
    ink: Image.Image, rng: np.random.Generator, page: np.ndarray
) -> tuple[int, int, int, int]:
    """Write white-on-black `ink` in pen somewhere on `page`; returns its box."""
    top = int(rng.integers(0, page.shape[0] - ink.height + 1))
    left = int(rng.integers(0, page.shape[1] - ink.width + 1))
    _write(page, ink, (top, left), float(rng.integers(15, 70)))
    return top, left, top + ink.height, left + ink.width


def _shadow(page: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hard shadow (a hand or the phone) over part of the page: a half-plane or a big
    ellipse, 35-65% as bright, with a penumbra of a few pixels."""
    height, width = page.shape[:2]
    rows, cols = np.mgrid[:height, :width].astype(np.float32)
    if rng.random() < 0.6:
        angle = rng.uniform(0, 2 * np.pi)
        through = rng.uniform(0.2, 0.8, 2) * (height, width)
        distance = (rows - through[0]) * np.sin(angle) + (cols - through[1]) * np.cos(angle)
    else:
        centre = rng.uniform(0, 1, 2) * (height, width)
        radii = rng.uniform(0.25, 0.6, 2) * (height, width)
        scaled = np.hypot((rows - centre[0]) / radii[0], (cols - centre[1]) / radii[1])
        distance = (1 - scaled) * min(radii)
    edge = np.clip(distance / rng.uniform(0.5, 4.0) + 0.5, 0, 1)
    darkness = 1 - rng.uniform(0.35, 0.65) * edge
    return np.asarray(page * (darkness[..., None] if page.ndim == 3 else darkness))


def hard_shadow(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A phone photo of a digit on paper with a hard shadow across part of the page."""
    page = _paper(rng)
    _digit_on_page(digit, rng, page, int(rng.integers(150, 330)))
    return _photo(_shadow(page, rng), rng)


NOTE_COLOURS = [(250, 235, 120), (250, 190, 200), (175, 215, 245), (190, 240, 170), (245, 245, 240)]
DESK_COLOURS = [(120, 80, 50), (90, 60, 40), (70, 70, 75), (40, 40, 45), (150, 120, 90)]


def _note_on_desk(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A sticky note or card lying, a little turned, on a darker desk, its edges in the
    frame: the RGB photo, and the mask of the note."""
    height, width = 480, 640
    desk = np.array(DESK_COLOURS[rng.integers(len(DESK_COLOURS))], np.float32)
    grain = np.asarray(
        Image.fromarray(rng.normal(0, 1, (12, 16)).astype(np.float32), "F").resize(
            (width, height), Image.Resampling.BICUBIC
        )
    )
    page = desk + (grain * rng.uniform(4, 14))[..., None]
    side = rng.uniform(0.55, 0.9) * height
    centre = rng.uniform(0.35, 0.65, 2) * (height, width)
    angle = np.deg2rad(rng.uniform(-15, 15))
    rows, cols = np.mgrid[:height, :width].astype(np.float32)
    along = (rows - centre[0]) * np.cos(angle) + (cols - centre[1]) * np.sin(angle)
    across = -(rows - centre[0]) * np.sin(angle) + (cols - centre[1]) * np.cos(angle)
    note = (np.abs(along) < side / 2) & (np.abs(across) < side / 2 * rng.uniform(1.0, 1.4))
    colour = np.array(NOTE_COLOURS[rng.integers(len(NOTE_COLOURS))], np.float32)
    shade = 1 - rng.uniform(0, 0.12) * (along / side + 0.5)
    page = np.where(note[..., None], colour * shade[..., None], page)
    return page, note


def note_on_desk(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A digit written on a sticky note or card that lies on a darker desk."""
    return _written_on_note(
        rng,
        lambda span: _scaled(
            digit, int(span * rng.uniform(0.35, 0.6)), float(rng.uniform(0, 0.03))
        ),
    )


def _written_on_note(
    rng: np.random.Generator, ink_for: Callable[[int], Image.Image]
) -> Image.Image:
    """A photo of a note on a desk, `ink_for(the note's smaller side)` written mid-note."""
    page, note = _note_on_desk(rng)
    rows = np.flatnonzero(note.any(axis=1))
    cols = np.flatnonzero(note.any(axis=0))
    span = min(rows[-1] - rows[0], cols[-1] - cols[0])
    ink = ink_for(int(span))
    top = int((rows[0] + rows[-1] - ink.height) / 2 + rng.uniform(-0.1, 0.1) * span)
    left = int((cols[0] + cols[-1] - ink.width) / 2 + rng.uniform(-0.1, 0.1) * span)
    pen = np.array([(20, 25, 30), (25, 35, 110), (15, 15, 15)][rng.integers(3)], np.float32)
    alpha = np.zeros(note.shape, np.float32)
    _write(alpha, ink, (max(0, top), max(0, left)), 1.0)
    page = page * (1 - alpha[..., None]) + pen * alpha[..., None]
    return _photo(page, rng)


def stray_marks(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A digit on a page with one to three specks or flecks of ink away from it."""
    page = _paper(rng, 400, 400)
    _stray_marks(page, _digit_on_page(digit, rng, page, int(rng.integers(90, 220))), rng)
    return _photo(page, rng)


def _stray_marks(
    page: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator
) -> None:
    """One to three specks or flecks of ink on `page` (in place), clear of the writing's box."""
    top, left, bottom, right = box
    height = bottom - top
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(50):  # somewhere clear of the digit's box
            y, x = rng.uniform(8, (page.shape[0] - 8, page.shape[1] - 8))
            gap = 0.15 * height
            if not (top - gap < y < bottom + gap and left - gap < x < right + gap):
                break
        size = rng.uniform(1.5, 0.06 * height + 2)
        mark = Image.new("L", page.shape[::-1], 0)
        draw = ImageDraw.Draw(mark)
        if rng.random() < 0.6:
            draw.ellipse((x - size / 2, y - size / 2, x + size / 2, y + size / 2), fill=255)
        else:  # a short fleck
            dx, dy = rng.uniform(-1, 1, 2) * size * 1.5
            draw.line((x, y, x + dx, y + dy), fill=255, width=max(1, int(size / 3)))
        _write(page, mark, (0, 0), float(rng.integers(20, 90)))


def _form_box(
    rng: np.random.Generator, inner: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """A printed form field: a page with a box drawn in thin lines whose inside is `inner`
    (height, width); returns the page and where the inside starts."""
    line = int(rng.integers(1, 4))
    outside = int(rng.integers(0, 60))  # page around the box: none in a cropped field
    height, width = inner[0] + 2 * (line + outside), inner[1] + 2 * (line + outside)
    page = np.full((height, width), float(rng.integers(225, 250)), np.float32)
    level = float(rng.integers(30, 140))
    box = Image.new("L", (width, height), 0)
    ImageDraw.Draw(box).rectangle(
        (outside, outside, width - outside - 1, height - outside - 1), outline=255, width=line
    )
    _write(page, box, (0, 0), level)
    return page, (outside + line, outside + line)


def boxed_digit(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A digit written inside a printed box, as in a form field."""
    height = int(rng.integers(60, 180))
    ink = _scaled(digit, height, bold=float(rng.uniform(0, 0.03)))
    margin = [int(rng.uniform(0.06, 0.3) * height) + 2 for _ in range(4)]
    inner = (height + margin[0] + margin[1], ink.width + margin[2] + margin[3])
    page, (top, left) = _form_box(rng, inner)
    _write(page, ink, (top + margin[0], left + margin[2]), float(rng.integers(15, 70)))
    return _photo(page, rng)


def ruled_paper(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A digit on ruled or squared paper, crossing its lines."""
    page, spacing = _ruled_paper(rng)
    _digit_on_page(digit, rng, page, int(spacing * rng.uniform(3, 7)))
    return _photo(page, rng)


def _ruled_paper(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Ruled or squared paper, and the spacing of its lines."""
    page = _paper(rng)
    spacing = rng.uniform(20, 40)
    rows, cols = np.mgrid[: page.shape[0], : page.shape[1]]
    ruled = (rows % spacing) < 1.6
    if rng.random() < 0.4:
        ruled |= (cols % spacing) < 1.6
    page[ruled] -= rng.uniform(40, 100)
    return page, spacing


def whiteboard_photo(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A marker digit on a whiteboard: glare, ghosts of erased writing, the frame's edge,
    darker corners. Held out: used for no decision."""
    height, width = 480, 640
    rows, cols = np.mgrid[:height, :width].astype(np.float32)
    board = np.full((height, width), float(rng.integers(200, 235)), np.float32)
    vignette = np.hypot((rows - height / 2) / height, (cols - width / 2) / width)
    board -= rng.uniform(20, 60) * vignette**2 * 2
    glare = rng.uniform(0, 1, 2) * (height, width)
    board += rng.uniform(15, 40) * np.exp(
        -((rows - glare[0]) ** 2 + (cols - glare[1]) ** 2) / (2 * rng.uniform(40, 120) ** 2)
    )
    for _ in range(int(rng.integers(1, 4))):  # erased writing leaves faint strokes
        ghost = Image.new("L", (width, height), 0)
        y, x = rng.uniform(0, 1, 2) * (height, width)
        ImageDraw.Draw(ghost).line(
            [(x, y), (x + rng.uniform(-150, 150), y + rng.uniform(-80, 80))],
            fill=255,
            width=int(rng.integers(4, 10)),
        )
        _write(board, ghost, (0, 0), float(board.mean() - rng.uniform(8, 20)))
    _digit_on_page(digit, rng, board, int(rng.integers(150, 300)))
    frame = int(rng.integers(10, 30))
    sides = rng.choice(4, size=int(rng.integers(1, 3)), replace=False)
    edges = [board[:frame], board[-frame:], board[:, :frame], board[:, -frame:]]
    for side in sides:
        edges[side][:] = float(rng.integers(110, 160))
    return _photo(board, rng)


LEGIBLE: dict[str, Maker] = {
    "canvas-bold": canvas_bold,
    "canvas-transparent": canvas_transparent,
    "frame-filling": frame_filling,
    "tiny": tiny,
    "off-centre": off_centre,
    "white-on-black-marker": white_on_black_marker,
    "low-resolution": low_resolution,
    "paper-photo": paper_photo,
    "hard-shadow": hard_shadow,
    "note-on-desk": note_on_desk,
    "stray-marks": stray_marks,
    "boxed-digit": boxed_digit,
    "ruled-paper": ruled_paper,
    "whiteboard-photo": whiteboard_photo,
}
# Photos arrive as JPEG, drawings and exports as PNG.
JPEG_KINDS = {"paper-photo", "hard-shadow", "note-on-desk", "ruled-paper", "whiteboard-photo"}
JPEG_KINDS |= {"paper-no-digit", "shadow-no-digit", "note-no-digit"}
# Kinds that decide nothing: read only for the report.
HELD_OUT = frozenset({"other-writers-8px", "whiteboard-photo"})


SEEDS = {"test": 1000, "tune": 1}  # each split's sets drawn from their own seed


def mnist_split(path: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`test` for reports; `tune` is the held-back end of the train split (never trained on)."""
    with np.load(path) as data:
        if split == "test":
            return data["x_test"], data["y_test"].astype(int)
        return data["x_train"][-HOLDOUT_EXAMPLES:], data["y_train"][-HOLDOUT_EXAMPLES:].astype(int)


def _encoded(kind: str, image: Image.Image, quality: int = 85) -> bytes:
    if kind in JPEG_KINDS:
        return encode(image.convert("RGB"), "JPEG", quality=quality)
    return encode(image)


def _one_digit_each(
    makers: dict[str, Maker], images: np.ndarray, labels: np.ndarray, per_kind: int, seed: int
) -> Iterator[Upload]:
    for offset, (kind, make) in enumerate(makers.items()):
        rng = np.random.default_rng(seed + offset)
        picks = rng.choice(len(images), size=min(per_kind, len(images)), replace=False)
        for index in picks:
            image = make(images[index], rng)
            yield Upload(kind, _encoded(kind, image, int(rng.integers(70, 92))), int(labels[index]))


legible_uploads = partial(_one_digit_each, LEGIBLE)


def other_writers() -> Iterator[Upload]:
    """scikit-learn's 1,797 optdigits (43 writers, 8x8, 0-16), enlarged 8-35x with smoothing."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(8)
    for values, label in zip(digits.images, digits.target, strict=True):
        small = Image.fromarray(np.round(values * 255 / 16).astype(np.uint8))
        scale = int(rng.integers(8, 36))
        big = small.resize((8 * scale, 8 * scale), Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            big = Image.eval(big, lambda v: 255 - v)
        yield Upload("other-writers-8px", encode(big), int(label))


# Things that are not one digit ------------------------------------------------------------


def _size(rng: np.random.Generator) -> tuple[int, int]:
    return int(rng.integers(96, 480)), int(rng.integers(96, 480))


def blank(rng: np.random.Generator) -> Image.Image:
    size = _size(rng)
    if rng.random() < 0.25:
        return Image.new("RGBA", size, (0, 0, 0, 0))
    return Image.new("L", size, int(rng.integers(0, 256)))


def near_blank(rng: np.random.Generator) -> Image.Image:
    """A faint smudge, or a speck of dust, on an otherwise empty page."""
    width, height = _size(rng)
    page = np.full((height, width), float(rng.integers(200, 250)), np.float32)
    rows, cols = np.mgrid[:height, :width]
    cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
    if rng.random() < 0.5:
        radius = rng.uniform(0.1, 0.3) * min(width, height)
        page -= 30 * np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * radius**2))
    else:
        radius = rng.uniform(0.6, 1.5)
        page[(rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2] = float(rng.integers(0, 80))
    return Image.fromarray(np.clip(page + rng.normal(0, 1.5, page.shape), 0, 255).astype(np.uint8))


def sensor_noise(rng: np.random.Generator) -> Image.Image:
    width, height = _size(rng)
    kind = rng.integers(0, 3)
    if kind == 0:
        pixels = rng.normal(128, rng.uniform(20, 80), (height, width))
    elif kind == 1:
        pixels = rng.uniform(0, 255, (height, width))
    else:
        pixels = np.where(rng.random((height, width)) < 0.5, 0, 255) * 1.0
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def filled_shape(rng: np.random.Generator) -> Image.Image:
    """A solid rectangle or ellipse, from a quarter of the frame to most of it; never a
    tall thin bar, which is a fair drawing of a 1."""
    width, height = _size(rng)
    dark = rng.random() < 0.5
    image = Image.new("L", (width, height), 255 if dark else 0)
    h = rng.uniform(0.35, 1.0) * height
    w = min(width, max(rng.uniform(0.35, 1.0) * width, 0.45 * h))
    x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
    draw = ImageDraw.Draw(image)
    box = (x, y, x + w, y + h)
    ink = int(rng.integers(0, 60)) if dark else int(rng.integers(200, 256))
    (draw.ellipse if rng.random() < 0.3 else draw.rectangle)(box, fill=ink)
    return image


def texture(rng: np.random.Generator) -> Image.Image:
    """Stripes, checks, grids, dots or smooth blotches over the whole frame."""
    width, height = _size(rng)
    rows, cols = np.mgrid[:height, :width].astype(np.float32)
    period = rng.uniform(8, 40)
    kind = rng.integers(0, 5)
    if kind == 0:
        angle = rng.uniform(0, np.pi)
        pattern = np.sin((rows * np.sin(angle) + cols * np.cos(angle)) * 2 * np.pi / period) > 0
    elif kind == 1:
        pattern = ((rows // period) + (cols // period)) % 2 == 0
    elif kind == 2:
        pattern = ((rows % period) < period / 5) | ((cols % period) < period / 5)
    elif kind == 3:
        pattern = ((rows % period - period / 2) ** 2 + (cols % period - period / 2) ** 2) < (
            period / 4
        ) ** 2
    else:
        coarse = rng.normal(0, 1, (max(2, int(height / period)), max(2, int(width / period))))
        smooth = np.asarray(
            Image.fromarray(coarse.astype(np.float32), "F").resize(
                (width, height), Image.Resampling.BICUBIC
            )
        )
        pattern = smooth > 0
    pixels = np.where(pattern, 40, 220) + rng.normal(0, 3, pattern.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def paper_without_digit(rng: np.random.Generator) -> Image.Image:
    """Photos of paper: uneven light and shadow, ruled lines, or a sheet on a dark desk."""
    width, height = 640, 480
    rows, cols = np.mgrid[:height, :width].astype(np.float32)
    page = np.full((height, width), float(rng.integers(180, 235)), np.float32)
    kind = rng.integers(0, 3)
    if kind == 0:
        angle = rng.uniform(0, 2 * np.pi)
        ramp = rows * np.sin(angle) + cols * np.cos(angle)
        page -= rng.uniform(40, 120) * (ramp - ramp.min()) / (ramp.max() - ramp.min())
    elif kind == 1:
        spacing = rng.uniform(18, 40)
        page[(rows % spacing) < 2] -= rng.uniform(60, 120)
    else:
        desk = np.full_like(page, float(rng.integers(20, 70)))
        x0, y0 = rng.uniform(0.1, 0.4) * width, rng.uniform(0.1, 0.4) * height
        inside = (cols > x0) & (rows > y0)
        page = np.where(inside, page, desk)
    page += rng.normal(0, 4, page.shape)
    return Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))


def text_line(rng: np.random.Generator) -> Image.Image:
    words = ["digits", "hello", "invoice", "total", "March", "the", "scan", "page", "note", "4 May"]
    return _printed(" ".join(rng.choice(words, size=int(rng.integers(2, 5)))), rng)


def _printed(text: str, rng: np.random.Generator) -> Image.Image:
    """`text` printed in one line, dark on light, 18-47 px type."""
    font = ImageFont.load_default(size=int(rng.integers(18, 48)))
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (int(right) + 40, int(bottom) + 40), 250)
    ImageDraw.Draw(image).text((20, 20), text, fill=20, font=font)
    return image


def several_digits(images: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Two to five MNIST digits written in a row, as a number."""
    count = int(rng.integers(2, 6))
    height = int(rng.integers(60, 140))
    inks = [_scaled(images[int(i)], height, bold=0.01) for i in rng.choice(len(images), count)]
    gap = int(rng.integers(4, 24))
    width = sum(ink.width for ink in inks) + gap * (count + 1)
    canvas = Image.new("L", (width, height + 2 * gap), 0)
    x = gap
    for ink in inks:
        canvas.paste(ink, (x, gap))
        x += ink.width + gap
    return Image.eval(canvas, lambda v: 255 - v)


def empty_form_box(rng: np.random.Generator) -> Image.Image:
    inner = (int(rng.integers(60, 200)), int(rng.integers(60, 200)))
    return _photo(_form_box(rng, inner)[0], rng)


REFUSABLE: dict[str, Callable[[np.random.Generator], Image.Image]] = {
    "blank": blank,
    "near-blank": near_blank,
    "sensor-noise": sensor_noise,
    "filled-shape": filled_shape,
    "texture": texture,
    "paper-no-digit": paper_without_digit,
    "text-line": text_line,
    "shadow-no-digit": lambda rng: _photo(_shadow(_paper(rng), rng), rng),
    "note-no-digit": lambda rng: _photo(_note_on_desk(rng)[0], rng),
    "empty-form-box": empty_form_box,
}


def refusable_uploads(images: np.ndarray, per_kind: int, seed: int) -> Iterator[Upload]:
    makers = list(REFUSABLE.items())  # each kind's seed follows from its place in this order
    makers.insert(6, ("several-digits", partial(several_digits, images)))
    return _refusable(dict(makers), per_kind, seed + 100)


def _refusable(
    makers: dict[str, Callable[[np.random.Generator], Image.Image]], per_kind: int, seed: int
) -> Iterator[Upload]:
    for offset, (kind, make) in enumerate(makers.items()):
        rng = np.random.default_rng(seed + offset)
        for _ in range(per_kind):
            yield Upload(kind, _encoded(kind, make(rng)), None)


# Numbers: several digits in a row, for /read --------------------------------------------

RowMaker = Callable[[list[np.ndarray], np.random.Generator], Image.Image]
MAX_SLOPE_DEGREES = 8
INK = 128  # a pixel of the row's ink at least this bright is ink once thresholded


def _row(
    digits: list[np.ndarray], rng: np.random.Generator, height: int, touching: bool = False
) -> Image.Image:
    """White-on-black ink of `digits` written left to right about `height` pixels tall: each a
    little taller or shorter and a little above or below a baseline sloping up to 8 degrees;
    gaps from ink to ink of a few pixels to about a digit's width. `touching`: one pair of
    neighbours overlaps, in some row, by a pixel up to 3% of the height."""
    bold = float(rng.uniform(0, 0.03))
    sizes = np.maximum(8, height * rng.uniform(0.88, 1.12, len(digits))).astype(int)
    inks = [np.asarray(_scaled(d, int(size), bold)) for d, size in zip(digits, sizes, strict=True)]
    gaps = np.maximum(3, rng.uniform(0.05, 0.8, len(inks)) * height).astype(int)
    if touching:
        gaps[rng.integers(1, len(inks))] = -rng.integers(1, max(2, round(0.03 * height)) + 1)
    slope = np.tan(np.deg2rad(rng.uniform(-MAX_SLOPE_DEGREES, MAX_SLOPE_DEGREES)))
    jitter = 0.06 * height
    width = sum(ink.shape[1] for ink in inks) + int(gaps.clip(0).sum())
    rise = abs(slope) * width
    first = jitter + 1 + (rise if slope < 0 else 0)
    canvas = np.zeros((int(rise + 2 * jitter) + max(len(ink) for ink in inks) + 4, width), np.uint8)
    reach = np.full(len(canvas), -1)  # each row's rightmost ink so far
    x = -1
    for ink, gap in zip(inks, gaps, strict=True):
        y = int(first + slope * max(x, 0) + rng.uniform(-jitter, jitter))
        rows = slice(y, y + len(ink))
        mask = ink >= INK
        if x < 0:
            x = 0
        else:
            # Apart means apart two rows up or down too: no corner-to-corner contact.
            near = reach[rows] if gap < 0 else ndimage.maximum_filter1d(reach, 5)[rows]
            facing = mask.any(axis=1) & (near >= 0)
            against = (near - mask.argmax(axis=1))[facing]
            start = int(against.max()) if against.size else int(reach.max())
            x = max(x + 1, start + 1 + int(gap))  # never left of the digit before
        drawn = np.flatnonzero(mask.any(axis=1))
        rights = x + ink.shape[1] - 1 - mask[drawn, ::-1].argmax(axis=1)
        reach[y + drawn] = np.maximum(reach[y + drawn], rights)
        np.maximum(canvas[rows, x : x + ink.shape[1]], ink, out=canvas[rows, x : x + ink.shape[1]])
    return _tight(canvas)


def number_canvas(
    digits: list[np.ndarray], rng: np.random.Generator, touching: bool = False
) -> Image.Image:
    """A number drawn on a canvas, dark on white, its digits 40-160 px tall."""
    ink = _row(digits, rng, int(rng.integers(40, 160)), touching)
    pad = rng.integers(8, 60, 4)
    size = (ink.width + int(pad[0] + pad[1]), ink.height + int(pad[2] + pad[3]))
    return _on_canvas(ink, size, (int(pad[0]), int(pad[2])))


def _photographed_row(
    digits: list[np.ndarray], rng: np.random.Generator, page: np.ndarray, height: int
) -> tuple[int, int, int, int]:
    """Write the number somewhere on `page` (in place), at most 92% of its width; its box."""
    ink = _row_within(digits, rng, height, (int(0.92 * page.shape[1]), page.shape[0]))
    return _ink_on_page(ink, rng, page)


def _row_within(
    digits: list[np.ndarray], rng: np.random.Generator, height: int, room: tuple[int, int]
) -> Image.Image:
    """The number about `height` tall, or lower where its digits would not fit in `room`
    (width, height): written smaller, so that its gaps stay a few pixels or more."""
    ink = _row(digits, rng, min(height, round(room[0] / (1.3 * len(digits)))))
    scale = min(1.0, room[0] / ink.width, room[1] / ink.height)  # the rare row still too wide
    size = (max(1, int(ink.width * scale)), max(1, int(ink.height * scale)))
    return ink if scale == 1 else ink.resize(size, Image.Resampling.BICUBIC)


def number_on_ruled_paper(digits: list[np.ndarray], rng: np.random.Generator) -> Image.Image:
    page, spacing = _ruled_paper(rng)
    _photographed_row(digits, rng, page, int(spacing * rng.uniform(1.5, 4)))
    return _photo(page, rng)


def number_in_shadow(digits: list[np.ndarray], rng: np.random.Generator) -> Image.Image:
    page = _paper(rng)
    _photographed_row(digits, rng, page, int(rng.integers(40, 120)))
    return _photo(_shadow(page, rng), rng)


def number_on_note(digits: list[np.ndarray], rng: np.random.Generator) -> Image.Image:
    def ink_for(span: int) -> Image.Image:
        return _row_within(
            digits, rng, int(span * rng.uniform(0.15, 0.35)), (int(0.85 * span), span)
        )

    return _written_on_note(rng, ink_for)


def number_with_stray_marks(digits: list[np.ndarray], rng: np.random.Generator) -> Image.Image:
    page = _paper(rng)
    _stray_marks(page, _photographed_row(digits, rng, page, int(rng.integers(40, 120))), rng)
    return _photo(page, rng)


NUMBERS: dict[str, tuple[RowMaker, tuple[int, int]]] = {  # maker, fewest and most digits
    "row": (number_canvas, (2, 6)),
    "long-row": (number_canvas, (7, 10)),
    "touching": (partial(number_canvas, touching=True), (2, 6)),
    "ruled": (number_on_ruled_paper, (2, 6)),
    "shadow": (number_in_shadow, (2, 6)),
    "note": (number_on_note, (2, 6)),
    "stray": (number_with_stray_marks, (2, 6)),
}
ONE_DIGIT: dict[str, Maker] = {"one-canvas": canvas_bold, "one-photo": paper_photo}
NOT_NUMBERS = {
    kind: REFUSABLE[kind]
    for kind in "text-line blank texture paper-no-digit shadow-no-digit note-no-digit".split()
}
JPEG_KINDS |= {"ruled", "shadow", "note", "stray", "one-photo"}


def printed_number(rng: np.random.Generator) -> tuple[Image.Image, str]:
    number = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(2, 7))))
    return _printed(number, rng), number


def number_uploads(
    images: np.ndarray, labels: np.ndarray, per_kind: int, seed: int
) -> Iterator[Upload]:
    """Numbers of the given MNIST digits (the label: the number as a string), printed
    numbers, single digits (the label: one character) and things that are not a number."""
    for offset, (kind, (make, (fewest, most))) in enumerate(NUMBERS.items()):
        rng = np.random.default_rng(seed + 200 + offset)
        for _ in range(per_kind):
            picks = rng.choice(len(images), int(rng.integers(fewest, most + 1)), replace=False)
            number = "".join(str(labels[i]) for i in picks)
            image = make([images[i] for i in picks], rng)
            yield Upload(kind, _encoded(kind, image, int(rng.integers(70, 92))), number)
    rng = np.random.default_rng(seed + 200 + len(NUMBERS))
    for _ in range(per_kind):
        image, number = printed_number(rng)
        yield Upload("printed", _encoded("printed", image), number)
    for upload in _one_digit_each(ONE_DIGIT, images, labels, per_kind, seed + 250):
        yield Upload(upload.kind, upload.data, str(upload.label))
    yield from _refusable(NOT_NUMBERS, per_kind, seed + 300)
