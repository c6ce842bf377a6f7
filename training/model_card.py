"""The model card: what a published version says of itself (assets.extra/model_card.json).

The gateway's GET /model serves it and people read it to choose a version: how it was
trained, on which data, how well it does on the test split and how far its confidence can
be trusted. `training.export.publish` adds the version number when it takes one.
"""

import datetime as dt
import platform
from importlib import metadata

import numpy as np

from contract import MODEL_NAME, NUM_CLASSES
from training.calibration import ECE_BINS
from training.data import MnistData
from training.evaluation import Evaluation
from training.feedback import FEEDBACK_WEIGHT, Feedback
from training.splits import Splits


def build_model_card(
    *,
    arch: str,
    epochs: int,
    seed: int,
    parameters: int,
    data: MnistData,
    splits: Splits,
    result: Evaluation,
    matrix: np.ndarray,
    duration_s: float,
) -> dict[str, object]:
    """The card of one training run; `matrix` is the test split's confusion matrix."""
    card: dict[str, object] = {
        "name": MODEL_NAME,
        "architecture": arch,
        "parameters": parameters,
        "epochs": epochs,
        "seed": seed,
        "test_accuracy": round(result.accuracy, 5),
        "test_loss": round(result.loss, 5),
        "per_class_accuracy": per_class_accuracy(matrix),
        "data": {
            "source": data.source,
            "sha256": data.sha256,
            "train_examples": len(splits.x_train),
            # The end of the train split, never trained on: the temperature is fitted there.
            "holdout_examples": len(splits.x_holdout),
            "test_examples": len(splits.x_test),
        },
        # The temperature folded into the export, and the test calibration error it leaves.
        "calibration": {
            "temperature": round(result.temperature, 5),
            "fitted_on": "holdout",
            "bins": ECE_BINS,
            "test_ece_before": round(result.ece_before, 5),
            "test_ece": round(result.ece_after, 5),
            "test_mean_confidence": round(result.mean_confidence, 5),
            "reliability": result.bins_after,
        },
        "training_duration_s": round(duration_s, 1),
        "library_versions": library_versions(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if splits.feedback is not None:
        card["feedback"] = feedback_section(splits.feedback, result.feedback_holdout_accuracy)
    return card


def per_class_accuracy(matrix: np.ndarray) -> dict[str, float]:
    totals = matrix.sum(axis=1)
    return {
        str(digit): round(float(matrix[digit, digit] / totals[digit]), 5) if totals[digit] else 0.0
        for digit in range(NUM_CLASSES)
    }


def feedback_section(feedback: Feedback, holdout_accuracy: float | None) -> dict[str, object]:
    """How many users' corrections joined training (--feedback-dir), and how the model does
    on those held out."""
    return {
        "items": feedback.items,
        "duplicates_dropped": feedback.duplicates,
        "skipped": feedback.skipped,
        "train_examples": len(feedback.x_train),
        "weight": FEEDBACK_WEIGHT,
        "holdout_examples": len(feedback.x_holdout),
        "holdout_accuracy": None if holdout_accuracy is None else round(holdout_accuracy, 5),
    }


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("tensorflow-cpu", "tensorflow", "keras", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
