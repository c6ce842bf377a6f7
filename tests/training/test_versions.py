"""Which recipes are published decides what the local stack still has to train."""

import json
from pathlib import Path

import pytest

from tests.conftest import train_tiny
from training.versions import existing_versions, published_recipes


def card(base: Path, version: int, architecture: str | None) -> None:
    assets = base / str(version) / "assets.extra"
    assets.mkdir(parents=True)
    if architecture is not None:
        (assets / "model_card.json").write_text(json.dumps({"architecture": architecture}))


def test_versions_published_recipes_read_from_model_cards(tmp_path: Path) -> None:
    card(tmp_path, 1, "quick")
    card(tmp_path, 2, "default")
    card(tmp_path, 3, None)
    (tmp_path / ".export-abc").mkdir()

    assert published_recipes(tmp_path) == {1: "quick", 2: "default", 3: "unknown"}
    assert published_recipes(tmp_path / "missing") == {}


def test_versions_unless_published_never_trains_a_recipe_twice(
    synthetic_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card(tmp_path, 1, "quick")

    assert train_tiny(synthetic_npz, tmp_path, "--unless-published") == 0  # seed: not yet
    assert train_tiny(synthetic_npz, tmp_path, "--unless-published") == 0  # seed: published

    assert existing_versions(tmp_path) == [1, 2]
    assert "Version 2 of recipe 'seed' is published; nothing to train." in capsys.readouterr().out
