"""What the test split says of a trained model, once its temperature is fitted on the holdout:
accuracy, loss and the calibration error before and after the temperature."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from training import calibration
from training.splits import Splits

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class Evaluation:
    """What the model card and the publishing gate need from the test split."""

    accuracy: float
    loss: float  # with the temperature
    predicted: np.ndarray
    temperature: float
    ece_before: float  # expected calibration error without the temperature
    ece_after: float
    mean_confidence: float  # of the answers with the temperature
    bins_before: list[dict[str, float]]  # reliability bins without the temperature
    bins_after: list[dict[str, float]]
    # On the users' corrections held out of training: None without --feedback-dir or when
    # none is held out.
    feedback_holdout_accuracy: float | None


def evaluate(model: "keras.Model", splits: Splits) -> Evaluation:
    """Test accuracy and loss with the temperature fitted on the holdout, and the
    calibration error before and after it."""
    holdout = model.predict(splits.x_holdout, batch_size=1024, verbose=0)
    temperature = calibration.fit_temperature(holdout, splits.y_holdout)
    raw = model.predict(splits.x_test, batch_size=1024, verbose=0)
    calibrated = calibration.apply_temperature(raw, temperature)
    predicted = calibrated.argmax(axis=1)
    picked = calibrated[np.arange(len(predicted)), splits.y_test]
    ece_before, bins_before = calibration.reliability(raw, splits.y_test)
    ece_after, bins_after = calibration.reliability(calibrated, splits.y_test)
    feedback_holdout_accuracy = None
    feedback = splits.feedback
    if feedback is not None and len(feedback.x_holdout):
        answers = model.predict((feedback.x_holdout / 255.0)[..., None], verbose=0)
        feedback_holdout_accuracy = float((answers.argmax(axis=1) == feedback.y_holdout).mean())
    return Evaluation(
        accuracy=float((predicted == splits.y_test).mean()),
        loss=float(-np.log(np.clip(picked, 1e-7, 1.0)).mean()),
        predicted=predicted,
        temperature=temperature,
        ece_before=ece_before,
        ece_after=ece_after,
        mean_confidence=float(calibrated.max(axis=1).mean()),
        bins_before=bins_before,
        bins_after=bins_after,
        feedback_holdout_accuracy=feedback_holdout_accuracy,
    )
