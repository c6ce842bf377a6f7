"""The fitted temperature makes confidence mean a probability."""

import numpy as np

from training.calibration import apply_temperature, fit_temperature, reliability


def overconfident_answers(
    count: int, temperature: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Answers drawn from calibrated probabilities, then sharpened by `temperature`."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, (count, 10))
    calibrated = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(10, p=row) for row in calibrated])
    return apply_temperature(calibrated, 1 / temperature), labels


def test_calibration_fit_recovers_the_temperature() -> None:
    probabilities, labels = overconfident_answers(20_000, temperature=2.0)

    assert abs(fit_temperature(probabilities, labels) - 2.0) < 0.1


def test_calibration_lowers_expected_calibration_error() -> None:
    probabilities, labels = overconfident_answers(20_000, temperature=2.0, seed=1)
    before, _ = reliability(probabilities, labels)

    after, bins = reliability(
        apply_temperature(probabilities, fit_temperature(probabilities, labels)), labels
    )

    assert before > 0.05
    assert after < 0.02
    assert sum(row["count"] for row in bins) == len(labels)


def test_calibration_keeps_the_predicted_digit() -> None:
    probabilities, _ = overconfident_answers(500, temperature=3.0)

    for temperature in (0.5, 2.0):
        sharpened = apply_temperature(probabilities, temperature)
        np.testing.assert_array_equal(sharpened.argmax(axis=1), probabilities.argmax(axis=1))
        np.testing.assert_allclose(sharpened.sum(axis=1), 1.0, atol=1e-5)
