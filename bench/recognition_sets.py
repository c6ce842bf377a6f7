"""Uploads people really send, made in code: legible digits of many kinds, and things that
are not one digit. The recognition benchmark and CI's accuracy check measure the stack on them.

Legible digits are MNIST digits (the test split for reports, the held-back end of the train
split for tuning) rendered the way uploads arrive: bold marker strokes on a canvas, exported
with transparency, filling the frame, tiny or off-centre on a page, thick white-on-black
strokes, low-resolution originals enlarged with smoothing, and phone photos of paper.
`other-writers-8px` holds digits by writers outside MNIST (scikit-learn's copy of the UCI
optdigits set, 8x8 with 17 grey levels), enlarged the same way: it is never used for tuning.
"""

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Maker = Callable[[np.ndarray, np.random.Generator], Image.Image]


@dataclass(frozen=True)
class Upload:
    kind: str
    data: bytes
    label: int | None  # None: not one digit, the stack should refuse it


def encode(image: Image.Image, fmt: str = "PNG", quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format=fmt)
    return buffer.getvalue()


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


def canvas_bold(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A thick marker across most of a 280x280 canvas, dark on white."""
    height = int(rng.integers(170, 250))
    ink = _scaled(digit, height, bold=float(rng.uniform(0.02, 0.045)))
    ink = ink.crop((0, 0, min(ink.width, 280), min(ink.height, 280)))
    return _on_canvas(
        ink, (280, 280), (_margin(rng, 280 - ink.width), _margin(rng, 280 - ink.height))
    )


def canvas_transparent(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A canvas export: dark strokes whose alpha is the ink, on a transparent background."""
    height = int(rng.integers(150, 250))
    ink = _scaled(digit, height, bold=float(rng.uniform(0.01, 0.04)))
    ink = ink.crop((0, 0, min(ink.width, 280), min(ink.height, 280)))
    alpha = Image.new("L", (280, 280), 0)
    alpha.paste(ink, (_margin(rng, 280 - ink.width), _margin(rng, 280 - ink.height)))
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


def tiny(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A small digit on a big page: 8-14% of a 400x400 page's height."""
    height = int(rng.integers(32, 56))
    ink = _scaled(digit, height, bold=float(rng.uniform(0, 0.03)))
    return _on_canvas(
        ink, (400, 400), (_margin(rng, 400 - ink.width), _margin(rng, 400 - ink.height))
    )


def off_centre(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A third-of-the-page digit pushed into a corner of a landscape page."""
    height = int(rng.integers(80, 130))
    ink = _scaled(digit, height, bold=float(rng.uniform(0, 0.03)))
    x = int(rng.choice([rng.integers(0, 20), 400 - ink.width - rng.integers(0, 20)]))
    y = int(rng.choice([rng.integers(0, 20), 300 - ink.height - rng.integers(0, 20)]))
    return _on_canvas(ink, (400, 300), (max(0, x), max(0, y)))


def white_on_black_marker(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Thick white strokes on black, as dark-mode drawing apps export them."""
    height = int(rng.integers(150, 240))
    ink = _scaled(digit, height, bold=float(rng.uniform(0.025, 0.05)))
    ink = ink.crop((0, 0, min(ink.width, 280), min(ink.height, 280)))
    at = (_margin(rng, 280 - ink.width), _margin(rng, 280 - ink.height))
    return _on_canvas(ink, (280, 280), at, dark_on_light=False)


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
    ink = np.asarray(_scaled(digit, height, bold=float(rng.uniform(0, 0.02))), np.float32) / 255
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


LEGIBLE: dict[str, Maker] = {
    "canvas-bold": canvas_bold,
    "canvas-transparent": canvas_transparent,
    "frame-filling": frame_filling,
    "tiny": tiny,
    "off-centre": off_centre,
    "white-on-black-marker": white_on_black_marker,
    "low-resolution": low_resolution,
    "paper-photo": paper_photo,
}
JPEG_KINDS = {"paper-photo"}


def mnist_split(path: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`test` for reports; `tune` is the held-back end of the train split (never trained on)."""
    from training.data import HOLDOUT_EXAMPLES

    with np.load(path) as data:
        if split == "test":
            return data["x_test"], data["y_test"].astype(int)
        return data["x_train"][-HOLDOUT_EXAMPLES:], data["y_train"][-HOLDOUT_EXAMPLES:].astype(int)


def legible_uploads(
    images: np.ndarray, labels: np.ndarray, per_kind: int, seed: int
) -> Iterator[Upload]:
    for offset, (kind, make) in enumerate(LEGIBLE.items()):
        rng = np.random.default_rng(seed + offset)
        picks = rng.choice(len(images), size=min(per_kind, len(images)), replace=False)
        for index in picks:
            image = make(images[index], rng)
            fmt = "JPEG" if kind in JPEG_KINDS else "PNG"
            yield Upload(
                kind, encode(image, fmt, quality=int(rng.integers(70, 92))), int(labels[index])
            )


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
    text = " ".join(rng.choice(words, size=int(rng.integers(2, 5))))
    font = ImageFont.load_default(size=int(rng.integers(18, 48)))
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right + 40, bottom + 40), 250)
    ImageDraw.Draw(image).text((20, 20), text, fill=20, font=font)
    return image


def several_digits_maker(images: np.ndarray) -> Callable[[np.random.Generator], Image.Image]:
    def several_digits(rng: np.random.Generator) -> Image.Image:
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

    return several_digits


def refusable_uploads(images: np.ndarray, per_kind: int, seed: int) -> Iterator[Upload]:
    makers: dict[str, Callable[[np.random.Generator], Image.Image]] = {
        "blank": blank,
        "near-blank": near_blank,
        "sensor-noise": sensor_noise,
        "filled-shape": filled_shape,
        "texture": texture,
        "paper-no-digit": paper_without_digit,
        "several-digits": several_digits_maker(images),
        "text-line": text_line,
    }
    for offset, (kind, make) in enumerate(makers.items()):
        rng = np.random.default_rng(seed + 100 + offset)
        for _ in range(per_kind):
            fmt = "JPEG" if kind == "paper-no-digit" else "PNG"
            yield Upload(kind, encode(make(rng), fmt), None)
