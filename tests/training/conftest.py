"""A tiny model trained once per session on synthetic digits, for the export tests."""

from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from tests.digit_images import write_synthetic_npz  # noqa: E402
from training.__main__ import main  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "mnist.npz"
    write_synthetic_npz(path, train=3000, test=300)
    return path


def train_tiny(npz: Path, model_dir: Path, *extra: str) -> int:
    """One epoch of the seed architecture: seconds, not minutes."""
    return main(
        [
            "--data",
            str(npz),
            "--model-dir",
            str(model_dir),
            "--arch",
            "seed",
            "--epochs",
            "1",
            "--min-accuracy",
            "0",
            *extra,
        ]
    )


@pytest.fixture(scope="session")
def exported_model(synthetic_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("models") / "mnist"
    assert train_tiny(synthetic_npz, model_dir) == 0
    return model_dir / "1"
