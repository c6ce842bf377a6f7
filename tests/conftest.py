"""Fixtures shared across the suite: a tiny SavedModel trained once per session."""

from pathlib import Path

import pytest

from tests.digit_images import write_synthetic_npz


@pytest.fixture(scope="session")
def synthetic_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "mnist.npz"
    write_synthetic_npz(path, train=3000, test=300)
    return path


def train_tiny(npz: Path, model_dir: Path, *extra: str) -> int:
    """One epoch of the seed architecture on synthetic digits: seconds, not minutes."""
    from training.__main__ import main

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
    """Version 1 of a tiny model exported by the real training command."""
    pytest.importorskip("tensorflow")
    model_dir = tmp_path_factory.mktemp("models") / "mnist"
    assert train_tiny(synthetic_npz, model_dir) == 0
    return model_dir / "1"
