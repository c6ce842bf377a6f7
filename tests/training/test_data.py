"""MNIST is found in the documented order, and its absence reads as one sentence."""

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import train_tiny
from training.data import DataUnavailable, load_mnist


def test_data_loads_from_argument_before_environment(
    synthetic_npz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_PATH", "/nowhere/mnist.npz")

    data = load_mnist(synthetic_npz)

    assert data.x_train.shape == (3000, 28, 28)
    assert data.source == str(synthetic_npz)


def test_data_loads_from_environment(synthetic_npz: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_PATH", str(synthetic_npz))

    assert load_mnist().y_test.shape == (300,)


def test_data_offline_without_file_says_how_to_supply_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import keras

    def offline() -> None:
        raise OSError("network unreachable")

    monkeypatch.delenv("MNIST_PATH", raising=False)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)

    with pytest.raises(DataUnavailable, match="pass --data PATH"):
        load_mnist()


def test_data_cli_missing_file_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_tiny(tmp_path / "absent.npz", tmp_path / "models") == 2

    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "models").exists()


def test_data_rejects_wrong_shapes(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    images = np.zeros((4, 32, 32), np.uint8)
    labels = np.zeros(4, np.uint8)
    np.savez(path, x_train=images, y_train=labels, x_test=images, y_test=labels)

    with pytest.raises(DataUnavailable, match="not \\[n, 28, 28\\]"):
        load_mnist(path)
