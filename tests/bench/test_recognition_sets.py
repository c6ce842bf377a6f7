import io

import numpy as np
import pytest
from PIL import Image

from bench.recognition_sets import NOT_NUMBERS, NUMBERS, ONE_DIGIT, Upload, number_uploads
from tests.bench.conftest import ink_parts


def dark_parts(data: bytes) -> int:
    return ink_parts(np.asarray(Image.open(io.BytesIO(data)).convert("L")) < 128)


def test_number_uploads_same_for_a_seed(
    digits: tuple[np.ndarray, np.ndarray], uploads: list[Upload]
) -> None:
    assert list(number_uploads(*digits, per_kind=6, seed=5)) == uploads
    assert list(number_uploads(*digits, per_kind=6, seed=6)) != uploads


def test_number_uploads_labelled_by_kind(uploads: list[Upload]) -> None:
    digit_counts = {kind: counts for kind, (_, counts) in NUMBERS.items()}
    digit_counts |= dict.fromkeys(ONE_DIGIT, (1, 1)) | {"printed": (2, 6)}
    for upload in uploads:
        if upload.kind in NOT_NUMBERS:
            assert upload.label is None
            continue
        assert isinstance(upload.label, str) and upload.label.isdigit()
        fewest, most = digit_counts[upload.kind]
        assert fewest <= len(upload.label) <= most, upload
    assert {u.kind for u in uploads} == {*NUMBERS, *ONE_DIGIT, *NOT_NUMBERS, "printed"}


@pytest.mark.parametrize("kind", ["row", "long-row"])
def test_number_canvas_digits_apart(uploads: list[Upload], kind: str) -> None:
    for upload in (u for u in uploads if u.kind == kind):
        assert isinstance(upload.label, str)
        assert dark_parts(upload.data) == len(upload.label)


def test_touching_canvas_shares_ink(uploads: list[Upload]) -> None:
    for upload in (u for u in uploads if u.kind == "touching"):
        assert isinstance(upload.label, str)
        assert dark_parts(upload.data) < len(upload.label)
