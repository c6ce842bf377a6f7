"""Users' corrections from the gateway's /feedback folder join the next training."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import train_tiny
from tests.drawings import synthetic_mnist
from training.feedback import load_feedback


def store(folder: Path, item_id: str, pixels: np.ndarray, label: object) -> None:
    """One item as the gateway stores it: <id>.png then <id>.json."""
    Image.fromarray(pixels, "L").save(folder / f"{item_id}.png")
    meta = {"id": item_id, "label": label, "predicted_digit": None, "image": f"{item_id}.png"}
    (folder / f"{item_id}.json").write_text(json.dumps(meta) + "\n")


@pytest.fixture
def feedback_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "feedback"
    folder.mkdir()
    images, labels = synthetic_mnist(60, seed=11)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        store(folder, f"{index:032x}", image, int(label))
    return folder


def test_feedback_reads_items_and_holds_a_stable_share_out(feedback_dir: Path) -> None:
    first, again = load_feedback(feedback_dir), load_feedback(feedback_dir)

    assert first.items == 60 and first.duplicates == 0 and first.skipped == 0
    assert len(first.x_train) + len(first.x_holdout) == 60
    assert 4 <= len(first.x_holdout) <= 24  # a fifth, drawn per item id
    np.testing.assert_array_equal(first.y_holdout, again.y_holdout)
    assert first.x_train.dtype == np.uint8 and first.x_train.shape[1:] == (28, 28)


def test_feedback_counts_an_image_once_and_drops_disagreements(feedback_dir: Path) -> None:
    images, _ = synthetic_mnist(2, seed=99)
    store(feedback_dir, "a" * 32, images[0], 3)
    store(feedback_dir, "b" * 32, images[0], 3)  # the same correction twice
    store(feedback_dir, "c" * 32, images[1], 4)
    store(feedback_dir, "d" * 32, images[1], 7)  # users disagree: teach nothing

    result = load_feedback(feedback_dir)

    assert result.items == 64 and result.duplicates == 2
    assert len(result.x_train) + len(result.x_holdout) == 61


def test_feedback_skips_malformed_items(feedback_dir: Path) -> None:
    images, _ = synthetic_mnist(1, seed=5)
    store(feedback_dir, "e" * 32, images[0], 12)  # not a digit
    store(feedback_dir, "f" * 32, np.zeros((30, 30), np.uint8), 1)  # not 28x28
    (feedback_dir / ("9" * 32 + ".json")).write_text("{not json")
    (feedback_dir / ".hidden.json.tmp").write_text("half written")

    result = load_feedback(feedback_dir)

    assert result.items == 60 and result.skipped == 3


def test_feedback_training_reports_the_held_out_accuracy(
    synthetic_npz: Path, feedback_dir: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"

    assert train_tiny(synthetic_npz, models, "--feedback-dir", str(feedback_dir)) == 0

    card = json.loads((models / "1/assets.extra/model_card.json").read_text())
    feedback = card["feedback"]
    assert feedback["items"] == 60 and feedback["weight"] == 10
    assert feedback["train_examples"] + feedback["holdout_examples"] == 60
    assert 0.0 <= feedback["holdout_accuracy"] <= 1.0
    assert card["data"]["train_examples"] == 2700 + 10 * feedback["train_examples"]


def test_feedback_folder_must_exist(synthetic_npz: Path, tmp_path: Path) -> None:
    assert train_tiny(synthetic_npz, tmp_path, "--feedback-dir", str(tmp_path / "nope")) == 2
