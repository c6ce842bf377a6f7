import numpy as np
import pytest
from scipy import ndimage

from bench.recognition_sets import Upload, number_uploads
from tests.drawings import synthetic_mnist


@pytest.fixture(scope="package")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Drawn digits whose ink is one 8-connected part, so parts on a canvas count digits."""
    images, labels = synthetic_mnist(120, seed=3)
    whole = [ink_parts(image >= 128) == 1 for image in images]
    return images[whole], labels[whole]


@pytest.fixture(scope="package")
def uploads(digits: tuple[np.ndarray, np.ndarray]) -> list[Upload]:
    return list(number_uploads(*digits, per_kind=6, seed=5))


def ink_parts(ink: np.ndarray) -> int:
    return int(ndimage.label(ink, np.ones((3, 3), bool))[1])
