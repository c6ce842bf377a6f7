"""The local model server on a tiny exported model, in-process."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from starlette.testclient import TestClient  # noqa: E402

from serving.server import ServerSettings, create_app  # noqa: E402
from serving.tf_serving_config import ModelSpec  # noqa: E402


@pytest.fixture
def model_base(exported_model: Path, tmp_path: Path) -> Path:
    """A base path holding version 1 of the tiny model."""
    base = tmp_path / "mnist"
    shutil.copytree(exported_model, base / "1")
    return base


@pytest.fixture
def server(model_base: Path) -> Iterator[TestClient]:
    spec = ModelSpec("mnist", model_base, labels={"stable": 1})
    with TestClient(create_app(ServerSettings(models=[spec], poll_interval_s=0.2))) as client:
        yield client
