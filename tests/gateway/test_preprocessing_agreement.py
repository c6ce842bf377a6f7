"""The gateway's preprocessing and the SavedModel's in-graph `predict_image_bytes`
normalisation agree: internal callers sending encoded images get the gateway's answers."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from gateway.errors import NoDigitFound
from gateway.preprocessing import preprocess_upload
from tests.drawings import (
    bold_eight,
    bold_one_bar,
    draw_digit,
    empty_printed_box,
    encode,
    in_a_half_printed_box,
    in_a_printed_box,
    not_one_digit,
    on_a_desk,
    page_with_digit,
    with_hard_shadow,
    with_specks,
)

tf = pytest.importorskip("tensorflow")

from training.graph_preprocessing import normalise_encoded_images  # noqa: E402


def uploads() -> list[object]:
    rgba = np.zeros((160, 160, 4), np.uint8)
    rgba[..., 3] = np.asarray(draw_digit(2, size=160, stroke=4))
    return [
        pytest.param(encode(draw_digit(3, size=28)), id="mnist-like-28"),
        pytest.param(
            encode(
                draw_digit(
                    5,
                    size=280,
                    height_fraction=0.5,
                    centre=(0.3, 0.6),
                    stroke=8,
                    dark_on_light=True,
                )
            ),
            id="canvas-280",
        ),
        pytest.param(
            encode(
                draw_digit(7, size=600, height_fraction=0.3, stroke=9, dark_on_light=True).convert(
                    "RGB"
                ),
                "JPEG",
                quality=90,
            ),
            id="photo-jpeg-600",
        ),
        pytest.param(encode(Image.fromarray(rgba, "RGBA")), id="transparent-canvas"),
        pytest.param(
            encode(draw_digit(1, size=90, height_fraction=0.8, stroke=2, dark_on_light=True)),
            id="thin-one",
        ),
    ]


@pytest.mark.parametrize("upload", uploads())
def test_agreement_gateway_and_graph_normalise_alike(upload: bytes) -> None:
    gateway = preprocess_upload(upload, 40_000_000)
    digits, refusals = normalise_encoded_images(tf.constant([upload]))
    graph = digits.numpy()[0, :, :, 0]

    assert refusals.numpy().tolist() == [b""]
    assert graph.shape == (28, 28)
    assert np.abs(gateway - graph).mean() < 0.02
    assert np.abs(gateway - graph).max() < 0.35


@pytest.mark.parametrize("upload", uploads())
def test_agreement_same_digit_from_the_model(exported_model: Path, upload: bytes) -> None:
    loaded = tf.saved_model.load(str(exported_model))
    image = preprocess_upload(upload, 40_000_000)[None, :, :, None]

    via_gateway = loaded.signatures["serving_default"](image=tf.constant(image))
    via_graph = loaded.signatures["predict_image_bytes"](image_bytes=tf.constant([upload]))

    assert int(via_gateway["digit"][0]) == int(via_graph["digit"][0])
    np.testing.assert_allclose(
        via_gateway["probabilities"].numpy(), via_graph["probabilities"].numpy(), atol=0.05
    )


@pytest.mark.parametrize(("image", "reason"), not_one_digit().values(), ids=not_one_digit())
def test_agreement_graph_refuses_what_the_gateway_refuses(image: object, reason: str) -> None:
    upload = encode(image)  # type: ignore[arg-type]
    with pytest.raises(NoDigitFound, match=reason) as refused:
        preprocess_upload(upload, 40_000_000)

    _, refusals = normalise_encoded_images(tf.constant([upload]))

    assert refusals.numpy()[0].decode() == refused.value.detail


@pytest.mark.parametrize("image", [bold_eight(), bold_one_bar()], ids=["bold-eight", "fat-one"])
def test_agreement_graph_accepts_bold_digits_the_gateway_accepts(image: object) -> None:
    upload = encode(image)  # type: ignore[arg-type]

    digits, refusals = normalise_encoded_images(tf.constant([upload]))

    assert refusals.numpy().tolist() == [b""]
    assert np.abs(preprocess_upload(upload, 40_000_000) - digits.numpy()[0, :, :, 0]).mean() < 0.02


def photographed_pages() -> list[object]:
    page = page_with_digit(7)
    return [
        pytest.param(encode(with_hard_shadow(page)), id="hard-shadow"),
        pytest.param(encode(on_a_desk(page), "JPEG", quality=90), id="card-on-a-desk-jpeg"),
        pytest.param(encode(with_specks(page)), id="specks"),
        pytest.param(encode(in_a_printed_box(page)), id="printed-box"),
        pytest.param(encode(in_a_half_printed_box(page)), id="two-sides-of-a-box"),
    ]


@pytest.mark.parametrize("upload", photographed_pages())
def test_agreement_graph_finds_the_digit_on_photographed_paper_as_the_gateway(
    upload: bytes,
) -> None:
    gateway = preprocess_upload(upload, 40_000_000)

    digits, refusals = normalise_encoded_images(tf.constant([upload]))

    assert refusals.numpy().tolist() == [b""]
    assert np.abs(gateway - digits.numpy()[0, :, :, 0]).mean() < 0.02


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(empty_printed_box(), id="empty-box"),
        pytest.param(on_a_desk(Image.new("L", (320, 240), 230)), id="blank-card-on-a-desk"),
    ],
)
def test_agreement_graph_refuses_photographed_paper_without_a_digit(image: Image.Image) -> None:
    upload = encode(image)
    with pytest.raises(NoDigitFound) as refused:
        preprocess_upload(upload, 40_000_000)

    _, refusals = normalise_encoded_images(tf.constant([upload]))

    assert refusals.numpy()[0].decode() == refused.value.detail


def with_orientation(image: Image.Image, orientation: int) -> bytes:
    """`image` stored turned as a phone with that EXIF Orientation stores it (1-8)."""
    stored = {
        1: image,
        2: ImageOps.mirror(image),
        3: image.rotate(180),
        4: ImageOps.flip(image),
        5: image.transpose(Image.Transpose.TRANSPOSE),
        6: image.rotate(90, expand=True),
        7: image.transpose(Image.Transpose.TRANSVERSE),
        8: image.rotate(270, expand=True),
    }[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored.convert("RGB"), "JPEG", quality=92, exif=exif)


def big_endian_exif(jpeg: bytes, orientation: int) -> bytes:
    """An APP1 segment in Motorola byte order ("MM"), as some cameras write it, right after
    the JPEG's start-of-image marker."""
    tiff = b"MM\x00\x2a" + (8).to_bytes(4, "big") + (1).to_bytes(2, "big")
    tiff += (0x0112).to_bytes(2, "big") + (3).to_bytes(2, "big") + (1).to_bytes(4, "big")
    tiff += orientation.to_bytes(2, "big") + b"\x00\x00" + (0).to_bytes(4, "big")
    segment = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + (len(segment) + 2).to_bytes(2, "big") + segment + jpeg[2:]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_agreement_graph_turns_exif_rotated_photos_upright_as_the_gateway(
    orientation: int,
) -> None:
    upright = page_with_digit(7)
    upload = with_orientation(upright, orientation)
    upright_digit = preprocess_upload(encode(upright), 40_000_000)
    gateway = preprocess_upload(upload, 40_000_000)

    digits, refusals = normalise_encoded_images(tf.constant([upload]))

    assert refusals.numpy().tolist() == [b""]
    assert np.abs(gateway - digits.numpy()[0, :, :, 0]).mean() < 0.02
    assert np.corrcoef(gateway.ravel(), upright_digit.ravel())[0, 1] > 0.9  # really upright


def test_agreement_graph_reads_exif_in_motorola_byte_order() -> None:
    upright = page_with_digit(7)
    sideways = upright.rotate(90, expand=True)
    upload = big_endian_exif(encode(sideways.convert("RGB"), "JPEG", quality=92), 6)

    digits, _ = normalise_encoded_images(tf.constant([upload]))

    expected = preprocess_upload(encode(upright), 40_000_000)
    assert np.corrcoef(digits.numpy()[0, :, :, 0].ravel(), expected.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("size", [(1, 1), (2, 7), (13, 60), (60, 13), (9, 9), (300, 11)])
def test_agreement_graph_answers_pages_of_any_size_as_the_gateway(size: tuple[int, int]) -> None:
    """Narrow pages meet windows wider than themselves (the flat field mirrors the page)."""
    width, height = size
    page = np.full((height, width), 225.0)
    page[height // 3 : 2 * height // 3 + 1, width // 3 : 2 * width // 3 + 1] = 30.0
    page[:, int(width * 0.6) :] *= 0.5  # a shadow: the flat field, and its windows
    upload = encode(Image.fromarray(page.astype(np.uint8)))
    try:
        gateway, refusal = preprocess_upload(upload, 40_000_000), ""
    except NoDigitFound as refused:
        gateway, refusal = None, refused.detail

    digits, refusals = normalise_encoded_images(tf.constant([upload]))

    assert refusals.numpy()[0].decode() == refusal
    if gateway is not None:
        assert np.abs(gateway - digits.numpy()[0, :, :, 0]).mean() < 0.02
