"""What a training run shows people: the confusion matrix, plots and the summary table
(the model card is training.model_card's)."""

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from contract import NUM_CLASSES


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix


def _pyplot() -> Any:
    """matplotlib.pyplot drawing off screen (training runs have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure_png(figure: object) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    _pyplot().close(figure)
    return buffer.getvalue()


def confusion_matrix_png(matrix: np.ndarray, accuracy: float) -> bytes:
    matrix_shown = matrix.astype(float)
    figure, axes = _pyplot().subplots(figsize=(6, 5))
    # Log colour scale: the diagonal dwarfs the mistakes, which are what matter.
    image = axes.imshow(np.log1p(matrix_shown), cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            colour = "white" if matrix_shown[row, col] > matrix_shown.max() / 4 else "black"
            axes.text(col, row, str(count), ha="center", va="center", fontsize=7, color=colour)
    axes.set(
        xticks=range(NUM_CLASSES),
        yticks=range(NUM_CLASSES),
        xlabel="predicted digit",
        ylabel="true digit",
        title=f"Test confusion matrix (accuracy {accuracy:.2%})",
    )
    figure.colorbar(image, ax=axes, label="log(1 + count)")
    return _figure_png(figure)


def training_curves_png(history: Mapping[str, Sequence[float]]) -> bytes:
    figure, (loss_axes, accuracy_axes) = _pyplot().subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(history["loss"]) + 1)
    for key, axes in (("loss", loss_axes), ("accuracy", accuracy_axes)):
        axes.plot(epochs, history[key], marker="o", label="train")
        if f"val_{key}" in history:
            axes.plot(epochs, history[f"val_{key}"], marker="o", label="test")
        # The loss is the one optimised (with label smoothing), not the model card's.
        title = "training objective" if key == "loss" else key
        axes.set(xlabel="epoch", ylabel=key, title=title)
        axes.grid(alpha=0.3)
        axes.legend()
    return _figure_png(figure)


def summary_table(card: Mapping[str, object], export_path: str) -> str:
    per_class = card["per_class_accuracy"]
    calibration = card["calibration"]
    assert isinstance(per_class, dict) and isinstance(calibration, dict)
    ece = f"test ECE {calibration['test_ece_before']:.2%} -> {calibration['test_ece']:.2%}"
    rows = [
        ("architecture", str(card["architecture"])),
        ("parameters", f"{card['parameters']:,}"),
        ("epochs", str(card["epochs"])),
        ("seed", str(card["seed"])),
        ("test accuracy", f"{card['test_accuracy']:.4%}"),
        ("test loss", f"{card['test_loss']:.4f}"),
        ("calibration", f"temperature {calibration['temperature']:.3f}, {ece}"),
        ("weakest digit", min(per_class, key=per_class.__getitem__)),
        ("training time", f"{card['training_duration_s']} s"),
        ("exported to", export_path),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    rule = "-" * max(len(line) for line in lines)
    return "\n".join([rule, *lines, rule])


def reliability_png(
    before: Sequence[Mapping[str, float]], after: Sequence[Mapping[str, float]]
) -> bytes:
    """Accuracy against confidence per bin, before and after the temperature."""
    figure, axes = _pyplot().subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    for rows, label in ((before, "before temperature"), (after, "after temperature")):
        axes.plot(
            [row["confidence"] for row in rows],
            [row["accuracy"] for row in rows],
            marker="o",
            label=label,
        )
    axes.set(
        xlabel="confidence (mean per bin)",
        ylabel="accuracy",
        title="Reliability on the MNIST test split",
        xlim=(0, 1.01),
        ylim=(0, 1.01),
    )
    axes.grid(alpha=0.3)
    axes.legend()
    return _figure_png(figure)
