"""Properties of preprocessing over arbitrary bytes and arbitrary images: only the
documented errors are ever raised, and every accepted image becomes a 28x28 array in [0, 1]."""

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from gateway.errors import (
    GatewayError,
    InvalidImage,
    NoDigitFound,
    PayloadTooLarge,
    UnsupportedImageType,
)
from gateway.preprocessing import preprocess_upload

DOCUMENTED = (InvalidImage, NoDigitFound, PayloadTooLarge, UnsupportedImageType)
MAX_PIXELS = 4_000_000


def check(upload: bytes) -> None:
    try:
        result = preprocess_upload(upload, MAX_PIXELS)
    except GatewayError as error:
        assert isinstance(error, DOCUMENTED), type(error)
        assert error.detail.endswith(".")
        return
    assert result.shape == (28, 28)
    assert result.dtype == np.float32
    assert np.isfinite(result).all()
    assert 0.0 <= result.min() and result.max() <= 1.0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_properties_arbitrary_bytes(upload: bytes) -> None:
    check(upload)


# Modes people's files come in, and the formats that can hold each.
FORMATS = {
    "L": ["PNG", "BMP", "TIFF", "GIF", "WEBP"],
    "RGB": ["PNG", "BMP", "TIFF", "GIF", "WEBP", "JPEG"],
    "RGBA": ["PNG", "TIFF", "WEBP"],
    "LA": ["PNG", "TIFF"],
    "P": ["PNG", "BMP", "GIF", "TIFF"],
    "1": ["PNG", "BMP", "TIFF", "GIF"],
    "CMYK": ["TIFF", "JPEG"],
    "I;16": ["PNG", "TIFF"],
}


@st.composite
def encoded_images(draw: st.DrawFn) -> bytes:
    mode = draw(st.sampled_from(sorted(FORMATS)))
    shape = (draw(st.integers(1, 80)), draw(st.integers(1, 80)))
    if mode == "I;16":
        image = Image.fromarray(draw(arrays(np.uint16, shape)))
    else:
        image = Image.fromarray(draw(arrays(np.uint8, (*shape, 4))), "RGBA").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=draw(st.sampled_from(FORMATS[mode])))
    data = buffer.getvalue()
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))  # truncated files too
    return data if cut is None else data[:cut]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(encoded_images())
def test_properties_arbitrary_images(upload: bytes) -> None:
    check(upload)
