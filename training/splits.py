"""The train, holdout and test splits as the model sees them: scaled to [0, 1], one channel.

The end of MNIST's train split is held back (never trained on) for the temperature and the
curves, so the test split stays unseen until the final evaluation.
"""

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from training.data import MnistData, holdout_size

if TYPE_CHECKING:
    from training.feedback import Feedback


@dataclass(frozen=True)
class Splits:
    """Scaled inputs and labels: train (maybe with its upload-like copy), holdout, test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feedback: "Feedback | None" = None


def prepare(
    data: MnistData,
    upload_domain: bool,
    seed: int,
    processes: int,
    feedback: "Feedback | None" = None,
) -> Splits:
    """Hold back the end of the train split; add the upload-like copy when the recipe asks,
    and the users' corrections, weighted."""
    held = holdout_size(len(data.x_train))
    images, labels = data.x_train[:-held], data.y_train[:-held]
    x_train = images.astype("float32") / 255.0
    y_train = labels
    if feedback is not None and len(feedback.x_train):
        from training.feedback import FEEDBACK_WEIGHT

        repeated = np.repeat(feedback.x_train, FEEDBACK_WEIGHT, axis=0)
        x_train = np.concatenate([x_train, repeated.astype("float32") / 255.0])
        y_train = np.concatenate([y_train, np.repeat(feedback.y_train, FEEDBACK_WEIGHT)])
    if upload_domain:
        from training.domain import upload_like

        started = time.monotonic()
        redrawn = upload_like(images, seed, processes=min(2, processes))
        print(f"Redrew {len(images)} digits as uploads in {time.monotonic() - started:.0f} s")
        x_train = np.concatenate([x_train, redrawn])
        y_train = np.concatenate([y_train, labels])
    return Splits(
        x_train[..., None],
        y_train.astype(np.int64),
        (data.x_train[-held:].astype("float32") / 255.0)[..., None],
        data.y_train[-held:].astype(np.int64),
        (data.x_test.astype("float32") / 255.0)[..., None],
        data.y_test.astype(np.int64),
        feedback,
    )
