"""Handwriting-like digits and realistic uploads drawn in code, so tests need neither MNIST
nor a network.

Two copies stay outside, each behind an image boundary: training/export.py draws its warm-up
7 inside the training image, which holds no tests/, and scripts/check_export_in_serving_tf.py
draws with numpy alone in the serving image's environment, which has no Pillow.
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# What the benchmarks draw too, for the tests that use it.
from bench.digits import Upload as Upload
from bench.digits import encode as encode
from bench.digits import uploads as uploads


def draw_digit(
    digit: int,
    *,
    size: int = 28,
    height_fraction: float = 0.7,
    centre: tuple[float, float] = (0.5, 0.5),
    stroke: int = 0,
    dark_on_light: bool = False,
) -> Image.Image:
    """A grayscale image of `digit` drawn with Pillow's scalable font."""
    ink, paper = (0, 255) if dark_on_light else (255, 0)
    image = Image.new("L", (size, size), paper)
    font = ImageFont.load_default(size=max(4, round(size * height_fraction)))
    draw = ImageDraw.Draw(image)
    draw.text(
        (size * centre[0], size * centre[1]),
        str(digit),
        fill=ink,
        font=font,
        anchor="mm",
        stroke_width=stroke,
        stroke_fill=ink,
    )
    return image


def pen_drawing(digit: int = 3, size: int = 280, **options: object) -> Image.Image:
    """Dark marker on white paper, off centre: a typical canvas or scan."""
    defaults: dict[str, object] = {"height_fraction": 0.45, "centre": (0.3, 0.62), "stroke": 5}
    return draw_digit(digit, size=size, dark_on_light=True, **(defaults | options))  # type: ignore[arg-type]


def synthetic_mnist(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` 28x28 uint8 digits, white on black like MNIST, varied in size, place and stroke."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    images = np.empty((count, 28, 28), dtype=np.uint8)
    for index, label in enumerate(labels):
        image = draw_digit(
            int(label),
            height_fraction=float(rng.uniform(0.55, 0.8)),
            centre=(float(rng.uniform(0.42, 0.58)), float(rng.uniform(0.42, 0.58))),
            stroke=int(rng.integers(0, 2)),
        )
        images[index] = np.asarray(image)
    return images, labels


def write_synthetic_npz(path: object, train: int = 2000, test: int = 400, seed: int = 0) -> None:
    """A file in Keras' mnist.npz layout made of synthetic digits."""
    x_train, y_train = synthetic_mnist(train, seed)
    x_test, y_test = synthetic_mnist(test, seed + 1)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)  # type: ignore[arg-type]


# Bold and big digits, and images that are not one digit -----------------------------


def bold_eight(size: int = 280) -> Image.Image:
    """A thick marker 8 across the whole canvas, its ink covering much of it."""
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    pen = size // 9
    draw.ellipse((size * 0.2, size * 0.03, size * 0.8, size * 0.5), outline=0, width=pen)
    draw.ellipse((size * 0.12, size * 0.45, size * 0.88, size * 0.97), outline=0, width=pen)
    return image


def _blot(size: tuple[int, int], box: tuple[int, int, int, int], ink: int) -> Image.Image:
    """A page with one solid rectangle of ink on it."""
    image = Image.new("L", size, 255)
    ImageDraw.Draw(image).rectangle(box, fill=ink)
    return image


def bold_one_bar() -> Image.Image:
    """A 1 drawn as one fat vertical bar: solid, but thin against its height."""
    return _blot((200, 200), (88, 20, 118, 180), 0)


def row_of_digits() -> Image.Image:
    image = Image.new("L", (420, 140), 255)
    for index, digit in enumerate((3, 1, 4)):
        image.paste(
            draw_digit(digit, size=120, stroke=4, dark_on_light=True), (10 + 135 * index, 10)
        )
    return image


def stripes() -> Image.Image:
    rows = np.arange(200)[:, None] + np.zeros(300)[None, :]
    return Image.fromarray(np.where((rows // 15) % 2 == 0, 30, 230).astype(np.uint8))


def speck() -> Image.Image:
    image = Image.new("L", (400, 400), 240)
    ImageDraw.Draw(image).ellipse((200, 200, 203, 203), fill=0)
    return image


def not_one_digit() -> dict[str, tuple[Image.Image, str]]:
    """Images the stack must refuse, and a word of the reason it gives."""
    return {
        "several-digits": (row_of_digits(), "several digits"),
        "filled-rectangle": (_blot((300, 240), (40, 30, 250, 200), 30), "filled area"),
        "stripes": (stripes(), "pattern"),
        "speck-of-dust": (speck(), "too small"),
    }


# Paper under real light: a page and what photos of it add --------------------------------


def page_with_digit(digit: int = 4, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A dark pen digit on a light page, a little left of centre."""
    width, height = size
    image = Image.new("L", size, 230)
    ink = draw_digit(digit, size=min(size), height_fraction=0.55, stroke=3, dark_on_light=True)
    image.paste(ink, ((width - ink.width) // 2 - width // 10, (height - ink.height) // 2))
    return image


def photographed(image: Image.Image, seed: int = 0) -> Image.Image:
    """Sensor noise, as a phone adds it."""
    pixels = np.asarray(image, np.float32)
    noisy = pixels + np.random.default_rng(seed).normal(0, 3, pixels.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def with_hard_shadow(image: Image.Image) -> Image.Image:
    """The right half of the page, digit included, in a hand's shadow at 45% of the light."""
    pixels = np.asarray(image, np.float32).copy()
    pixels[:, int(pixels.shape[1] * 0.45) :] *= 0.45
    return photographed(Image.fromarray(pixels.astype(np.uint8)))


def on_a_desk(image: Image.Image) -> Image.Image:
    """The page as a card lying in the middle of a darker, grained desk."""
    width, height = image.size
    rows, cols = np.mgrid[: height + 120, : width + 160]
    desk = 80 + 10 * np.sin(rows / 7.0) * np.sin(cols / 11.0)
    desk[60 : 60 + height, 80 : 80 + width] = np.asarray(image, np.float32)
    return photographed(Image.fromarray(desk.astype(np.uint8)))


def with_specks(image: Image.Image) -> Image.Image:
    """Three dots of ink far from the digit, as dust or a pen's slip leave them."""
    marked = image.copy()
    draw = ImageDraw.Draw(marked)
    width, height = image.size
    for x, y in ((0.9, 0.1), (0.85, 0.85), (0.08, 0.9)):
        draw.ellipse((x * width - 3, y * height - 3, x * width + 3, y * height + 3), fill=20)
    return marked


def in_a_printed_box(image: Image.Image) -> Image.Image:
    """The page as a form field: a box printed round the digit."""
    boxed = image.copy()
    width, height = image.size
    ImageDraw.Draw(boxed).rectangle((12, 12, width - 13, height - 13), outline=40, width=3)
    return boxed


def in_a_half_printed_box(image: Image.Image) -> Image.Image:
    """A form field whose faint print shows two sides of the box, its top and its left."""
    boxed = image.copy()
    width, height = image.size
    draw = ImageDraw.Draw(boxed)
    draw.line((12, 12, width - 13, 12), fill=40, width=2)
    draw.line((12, 12, 12, height - 13), fill=40, width=2)
    return boxed


def empty_printed_box() -> Image.Image:
    return in_a_printed_box(Image.new("L", (320, 240), 230))


