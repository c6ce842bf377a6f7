"""Locate and load MNIST in Keras' `mnist.npz` format."""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract import IMAGE_SIZE, NUM_CLASSES

MNIST_PATH_ENV = "MNIST_PATH"
# The last images of the train split are never trained on: temperature calibration and the
# tuning of upload handling use them, so MNIST's test split stays for reporting only.
HOLDOUT_EXAMPLES = 2000


def holdout_size(train_examples: int) -> int:
    """HOLDOUT_EXAMPLES, or a tenth of a smaller train split (tests train on a few thousand)."""
    return min(HOLDOUT_EXAMPLES, max(1, train_examples // 10))


_KEYS = ("x_train", "y_train", "x_test", "y_test")


class DataUnavailable(Exception):
    """MNIST could not be found or read; the message says how to supply it."""


@dataclass(frozen=True)
class MnistData:
    x_train: np.ndarray  # uint8 [n, 28, 28]
    y_train: np.ndarray  # uint8 [n]
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: str


def load_mnist(data_path: str | os.PathLike[str] | None = None) -> MnistData:
    """Load MNIST from `data_path`, else `$MNIST_PATH`, else Keras' own download.

    Raises:
        DataUnavailable: the file is missing or malformed, or the download failed.
    """
    chosen = data_path or os.environ.get(MNIST_PATH_ENV)
    path = Path(chosen) if chosen else _download()
    if not path.is_file():
        raise DataUnavailable(
            f"MNIST file {path} does not exist; pass --data PATH to a Keras mnist.npz file "
            f"or set {MNIST_PATH_ENV}."
        )
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in _KEYS}
    except (OSError, ValueError, KeyError) as exc:
        raise DataUnavailable(
            f"{path} is not a Keras mnist.npz file with arrays {', '.join(_KEYS)} ({exc})."
        ) from exc
    _check_arrays(path, arrays)
    return MnistData(**arrays, source=str(path), sha256=_sha256(path))


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _download() -> Path:
    import keras

    try:
        keras.datasets.mnist.load_data()  # downloads once into Keras' cache
    except Exception as exc:  # any network or file-system failure reads the same to a user
        raise DataUnavailable(
            "MNIST is not available offline and could not be downloaded; pass --data PATH to a "
            f"Keras mnist.npz file or set {MNIST_PATH_ENV}."
        ) from exc
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "datasets" / "mnist.npz"


def _check_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise DataUnavailable(f"{path}: x_{split} has shape {images.shape}, not [n, 28, 28].")
        if len(images) != len(labels) or len(images) == 0:
            raise DataUnavailable(f"{path}: x_{split} and y_{split} differ in length or are empty.")
        if labels.min() < 0 or labels.max() >= NUM_CLASSES:
            raise DataUnavailable(f"{path}: y_{split} holds labels outside 0-9.")
