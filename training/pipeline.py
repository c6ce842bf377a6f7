"""One training run, from the data to a published version: load MNIST, prepare the splits,
fit, evaluate, gate on accuracy, publish with the model card and plots.

TensorFlow takes seconds to import: it is imported only once there is work to do, so a
stack's start-up check (--if-missing, --unless-published) answers in milliseconds.
"""

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from contract import NUM_CLASSES
from training.data import DataUnavailable, load_mnist
from training.evaluation import evaluate
from training.recipes import RECIPES, Recipe
from training.splits import Splits, prepare
from training.versions import existing_versions, published_recipes

if TYPE_CHECKING:
    import keras

    from training.feedback import Feedback

EXIT_BELOW_GATE = 1
EXIT_DATA_ERROR = 2


@dataclass(frozen=True)
class TrainingOptions:
    """What to train and where to publish it (the command line's options, by name)."""

    data: str | None  # mnist.npz; None: $MNIST_PATH, else Keras' own download
    model_dir: Path  # the base path of integer version folders
    arch: str
    epochs: int | None  # None: the recipe's own budget
    seed: int
    min_accuracy: float
    force: bool  # publish even below min_accuracy
    if_missing: bool  # nothing to do when any version exists
    unless_published: bool  # nothing to do when this recipe has a version
    feedback_dir: Path | None
    threads: int | None  # None: all cores


def train_and_publish(options: TrainingOptions) -> int:
    """Run the whole pipeline; returns the command's exit code (0 published or nothing to
    do, EXIT_BELOW_GATE, EXIT_DATA_ERROR)."""
    reason = nothing_to_train(options)
    if reason is not None:
        print(reason)
        return 0

    import keras

    limit_threads(options.threads)
    from training.model import build_model

    try:
        data = load_mnist(options.data)
    except DataUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATA_ERROR
    print(f"Training on {len(data.x_train)} images from {data.source} (sha256 {data.sha256[:12]}…)")

    # Seeds Python, numpy and TensorFlow (weights, shuffling, dropout, augmentation). Full
    # op determinism would cost a fifth of the training budget; CPU kernels here repeat anyway.
    keras.utils.set_random_seed(options.seed)
    recipe = RECIPES[options.arch]
    epochs = options.epochs or recipe.epochs
    feedback = None
    if options.feedback_dir is not None:
        if not options.feedback_dir.is_dir():
            print(f"error: --feedback-dir {options.feedback_dir} is not a folder", file=sys.stderr)
            return EXIT_DATA_ERROR
        feedback = read_feedback(options.feedback_dir)
    threads = options.threads or os.cpu_count() or 1
    splits = prepare(data, recipe.upload_domain, options.seed, threads, feedback)
    steps_per_epoch = -(-len(splits.x_train) // recipe.batch_size)
    model = build_model(options.arch, steps_per_epoch, epochs)
    history, duration_s = fit(model, splits, recipe, epochs)

    result = evaluate(model, splits)
    print(f"Test accuracy: {result.accuracy:.4f}")
    if result.accuracy < options.min_accuracy and not options.force:
        # A polling model server would start serving whatever is published.
        print(
            f"Not published: test accuracy {result.accuracy:.4f} is below --min-accuracy "
            f"{options.min_accuracy}; train longer or pass --force.",
            file=sys.stderr,
        )
        return EXIT_BELOW_GATE

    # The next version, with its model card and plots in assets.extra/.
    from training import report
    from training.export import publish
    from training.model_card import build_model_card

    matrix = report.confusion_matrix(splits.y_test, result.predicted)
    card = build_model_card(
        arch=options.arch,
        epochs=epochs,
        seed=options.seed,
        parameters=model.count_params(),
        data=data,
        splits=splits,
        result=result,
        matrix=matrix,
        duration_s=duration_s,
    )
    path = publish(
        model,
        options.model_dir,
        card,
        temperature=result.temperature,
        extra_files={
            "confusion_matrix.png": report.confusion_matrix_png(matrix, result.accuracy),
            "training_curves.png": report.training_curves_png(history),
            "reliability_diagram.png": report.reliability_png(
                result.bins_before, result.bins_after
            ),
        },
    )
    print(report.summary_table(card, str(path)))
    return 0


def nothing_to_train(options: TrainingOptions) -> str | None:
    """Why there is nothing to do, if so: answered from the folder names and model cards
    alone, before TensorFlow is imported, so a stack's start-up check takes milliseconds."""
    versions = existing_versions(options.model_dir)
    if options.if_missing and versions:
        return f"Model version {versions[-1]} exists in {options.model_dir}; nothing to train."
    if options.unless_published:
        published = published_recipes(options.model_dir)
        same = [v for v, recipe in published.items() if recipe == options.arch]
        if same:
            return f"Version {same[-1]} of recipe {options.arch!r} is published; nothing to train."
    return None


def limit_threads(threads: int | None) -> None:
    """Leave cores to a model server on the same machine (the local stack trains beside it)."""
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def read_feedback(folder: Path) -> "Feedback":
    """The gateway's stored corrections, and a line saying how many of them are usable."""
    from training.feedback import load_feedback

    feedback = load_feedback(folder)
    print(
        f"Feedback: {feedback.items} corrections ({feedback.duplicates} repeats, "
        f"{feedback.skipped} unreadable); {len(feedback.x_train)} train, "
        f"{len(feedback.x_holdout)} held out"
    )
    return feedback


def fit(
    model: "keras.Model", splits: Splits, recipe: Recipe, epochs: int
) -> tuple[dict[str, list[float]], float]:
    """The training curves and the seconds the fit took (the model card reports both)."""
    import keras

    class ExpectedFinish(keras.callbacks.Callback):  # type: ignore[misc]
        """After each epoch, how far training is and when it should end: for a person (or
        the local stack's banner) watching a training in the background."""

        def __init__(self) -> None:
            super().__init__()
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: object = None) -> None:  # noqa: ARG002 (Keras)
            done = epoch + 1
            remaining = (time.monotonic() - self.started) / done * (epochs - done)
            finish = time.strftime("%H:%M:%S", time.localtime(time.time() + remaining))
            print(f"Progress: epoch {done}/{epochs}, expected finish {finish}", flush=True)

    progress = ExpectedFinish()
    history = model.fit(
        splits.x_train,
        keras.utils.to_categorical(splits.y_train, NUM_CLASSES),
        batch_size=recipe.batch_size,
        epochs=epochs,
        shuffle=True,
        # The holdout is watched for the curves; the test split stays unseen until the end.
        validation_data=(
            splits.x_holdout,
            keras.utils.to_categorical(splits.y_holdout, NUM_CLASSES),
        ),
        verbose=1 if sys.stdout.isatty() else 2,
        callbacks=[progress],
    )
    return dict(history.history), time.monotonic() - progress.started
