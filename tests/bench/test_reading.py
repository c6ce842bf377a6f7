import pytest

from bench.reading import FLOORS, calibration_error
from bench.recognition_sets import Upload


def test_reading_floors_every_kind(uploads: list[Upload]) -> None:
    assert set(FLOORS) == {upload.kind for upload in uploads}


@pytest.mark.parametrize(
    ("answers", "ece"),
    [
        pytest.param([(0.9, True)] * 9 + [(0.9, False)], 0.0, id="calibrated"),
        pytest.param([(0.95, True)] * 5 + [(0.95, False)] * 5, 0.45, id="overconfident"),
        pytest.param([(0.15, True)] * 2 + [(0.95, True)] * 2, 0.45, id="two-bins"),
    ],
)
def test_calibration_error_weighs_each_bins_gap(
    answers: list[tuple[float, bool]], ece: float
) -> None:
    assert calibration_error(answers) == pytest.approx(ece)
