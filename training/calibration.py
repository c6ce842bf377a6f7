"""Confidence that means a probability: a temperature fitted on digits held out from
training, folded into the exported graph, and the calibration error it leaves."""

import numpy as np
import numpy.typing as npt

ECE_BINS = 15


def _log_probabilities(probabilities: np.ndarray, temperature: float) -> npt.NDArray[np.float64]:
    # softmax(log p / T) is softmax(logits / T): the model's logits up to a constant.
    scaled = np.log(np.maximum(probabilities.astype(np.float64), 1e-30)) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    log_total: npt.NDArray[np.float64] = np.log(np.exp(scaled).sum(axis=1, keepdims=True))
    return scaled - log_total


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    return np.exp(_log_probabilities(probabilities, temperature)).astype(np.float32)


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of `labels`, searched over
    log T in [log 0.05, log 5] (the likelihood is unimodal in T)."""
    from scipy.optimize import minimize_scalar

    def loss(log_t: float) -> float:
        picked = _log_probabilities(probabilities, float(np.exp(log_t)))
        return float(-picked[np.arange(len(labels)), labels].mean())

    bounds = (np.log(0.05), np.log(5.0))
    found = minimize_scalar(loss, bounds=bounds, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(found.x))


def reliability(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error over equal-width confidence bins, and the bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows, error = [], 0.0
    for index in range(bins):
        chosen = which == index
        if not chosen.any():
            continue
        mean_confidence = float(confidence[chosen].mean())
        accuracy = float(correct[chosen].mean())
        error += chosen.mean() * abs(mean_confidence - accuracy)
        rows.append(
            {
                "low": float(edges[index]),
                "high": float(edges[index + 1]),
                "count": int(chosen.sum()),
                "confidence": round(mean_confidence, 5),
                "accuracy": round(accuracy, 5),
            }
        )
    return float(error), rows
