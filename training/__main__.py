"""Command line: `python -m training --data mnist.npz --model-dir models/mnist`.

Trains the CNN, evaluates it on the test split and publishes the next SavedModel version.
Exit codes: 0 published (or nothing to do with --if-missing or --unless-published), 1 below
--min-accuracy, 2 data or usage problem.
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from contract import MODEL_NAME, NUM_CLASSES
from training.data import DataUnavailable, MnistData, holdout_size, load_mnist
from training.recipes import ARCHITECTURES, RECIPES, Recipe
from training.versions import existing_versions, published_recipes

if TYPE_CHECKING:
    import keras

    from training.feedback import Feedback

EXIT_BELOW_GATE = 1
EXIT_DATA_ERROR = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the MNIST CNN and publish it as the next SavedModel version.",
    )
    parser.add_argument(
        "--data",
        help="Keras mnist.npz file (default: $MNIST_PATH, else Keras' own download)",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path("models") / MODEL_NAME,
        help="base path holding integer version folders (default: %(default)s)",
    )
    parser.add_argument("--arch", choices=ARCHITECTURES, default="default")
    parser.add_argument("--epochs", type=int, help="default: the architecture's own budget")
    parser.add_argument("--seed", type=int, default=42, help="makes runs repeatable")
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=0.99,
        help="do not publish a model below this test accuracy (default: %(default)s)",
    )
    parser.add_argument("--force", action="store_true", help="publish even below --min-accuracy")
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when a version already exists (first start of a stack)",
    )
    parser.add_argument(
        "--unless-published",
        action="store_true",
        help="do nothing when a version of this recipe is already published",
    )
    parser.add_argument(
        "--feedback-dir",
        type=Path,
        help="corrections stored by the gateway's POST /feedback, added to training",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for training (default: all cores); fewer leave room for serving",
    )
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


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


def fit(
    model: "keras.Model", splits: Splits, recipe: Recipe, epochs: int
) -> dict[str, list[float]]:
    import keras

    class ExpectedFinish(keras.callbacks.Callback):  # type: ignore[misc]
        """After each epoch, how far training is and when it should end: for a person (or
        the local stack's banner) watching a training in the background."""

        def __init__(self) -> None:
            super().__init__()
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            done = epoch + 1
            remaining = (time.monotonic() - self.started) / done * (epochs - done)
            finish = time.strftime("%H:%M:%S", time.localtime(time.time() + remaining))
            print(f"Progress: epoch {done}/{epochs}, expected finish {finish}", flush=True)

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
        callbacks=[ExpectedFinish()],
    )
    return dict(history.history)


@dataclass(frozen=True)
class Evaluation:
    """What the model card and the publishing gate need from the test split."""

    accuracy: float
    loss: float  # with the temperature
    predicted: np.ndarray
    temperature: float
    calibration: dict[str, object]  # the model card's section
    bins_before: list[dict[str, float]]  # reliability bins without the temperature
    bins_after: list[dict[str, float]]
    feedback: dict[str, object] | None  # the model card's section, with --feedback-dir


def evaluate(model: "keras.Model", splits: Splits) -> Evaluation:
    """Test accuracy and loss with the temperature fitted on the holdout, and the
    calibration error before and after it."""
    from training import calibration

    holdout = model.predict(splits.x_holdout, batch_size=1024, verbose=0)
    temperature = calibration.fit_temperature(holdout, splits.y_holdout)
    raw = model.predict(splits.x_test, batch_size=1024, verbose=0)
    calibrated = calibration.apply_temperature(raw, temperature)
    predicted = calibrated.argmax(axis=1)
    picked = calibrated[np.arange(len(predicted)), splits.y_test]
    ece_before, bins_before = calibration.reliability(raw, splits.y_test)
    ece_after, bins_after = calibration.reliability(calibrated, splits.y_test)
    feedback_card: dict[str, object] | None = None
    if splits.feedback is not None:
        from training.feedback import FEEDBACK_WEIGHT

        fb = splits.feedback
        holdout_accuracy = None
        if len(fb.x_holdout):
            answers = model.predict((fb.x_holdout / 255.0)[..., None], verbose=0)
            holdout_accuracy = round(float((answers.argmax(axis=1) == fb.y_holdout).mean()), 5)
        feedback_card = {
            "items": fb.items,
            "duplicates_dropped": fb.duplicates,
            "skipped": fb.skipped,
            "train_examples": len(fb.x_train),
            "weight": FEEDBACK_WEIGHT,
            "holdout_examples": len(fb.x_holdout),
            "holdout_accuracy": holdout_accuracy,
        }
    return Evaluation(
        accuracy=float((predicted == splits.y_test).mean()),
        loss=float(-np.log(np.clip(picked, 1e-7, 1.0)).mean()),
        predicted=predicted,
        temperature=temperature,
        calibration={
            "temperature": round(temperature, 5),
            "fitted_on": "holdout",
            "bins": calibration.ECE_BINS,
            "test_ece_before": round(ece_before, 5),
            "test_ece": round(ece_after, 5),
            "test_mean_confidence": round(float(calibrated.max(axis=1).mean()), 5),
            "reliability": bins_after,
        },
        bins_before=bins_before,
        bins_after=bins_after,
        feedback=feedback_card,
    )


def nothing_to_train(args: argparse.Namespace) -> str | None:
    """Why there is nothing to do, if so: answered from the folder names and model cards
    alone, before TensorFlow is imported, so a stack's start-up check takes milliseconds."""
    versions = existing_versions(args.model_dir)
    if args.if_missing and versions:
        return f"Model version {versions[-1]} exists in {args.model_dir}; nothing to train."
    if args.unless_published:
        same = [v for v, recipe in published_recipes(args.model_dir).items() if recipe == args.arch]
        if same:
            return f"Version {same[-1]} of recipe {args.arch!r} is published; nothing to train."
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


def timed_fit(
    model: "keras.Model", splits: Splits, recipe: Recipe, epochs: int
) -> tuple[dict[str, list[float]], float]:
    """The training curves and the seconds the fit took (the model card reports both)."""
    started = time.monotonic()
    history = fit(model, splits, recipe, epochs)
    return history, time.monotonic() - started


def passes_gate(accuracy: float, min_accuracy: float, force: bool) -> bool:
    """A model below --min-accuracy is not published (unless forced): a polling model server
    would otherwise start serving it."""
    if accuracy >= min_accuracy or force:
        return True
    print(
        f"Not published: test accuracy {accuracy:.4f} is below --min-accuracy "
        f"{min_accuracy}; train longer or pass --force.",
        file=sys.stderr,
    )
    return False


def publish_version(
    model: "keras.Model",
    args: argparse.Namespace,
    *,
    epochs: int,
    data: MnistData,
    splits: Splits,
    history: dict[str, list[float]],
    duration_s: float,
    result: Evaluation,
) -> Path:
    """Export the model with its card and plots as the next version, and print the summary
    table; returns the version folder."""
    from training import report
    from training.export import publish

    matrix = report.confusion_matrix(splits.y_test, result.predicted)
    card = report.build_model_card(
        arch=args.arch,
        epochs=epochs,
        seed=args.seed,
        accuracy=result.accuracy,
        loss=result.loss,
        matrix=matrix,
        data_source=data.source,
        data_sha256=data.sha256,
        train_examples=len(splits.x_train),
        holdout_examples=len(splits.x_holdout),
        test_examples=len(splits.x_test),
        duration_s=duration_s,
        parameters=model.count_params(),
        calibration=result.calibration,
    )
    if result.feedback is not None:
        card["feedback"] = result.feedback
    path = publish(
        model,
        args.model_dir,
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
    card["version"] = int(path.name)
    print(report.summary_table(card, str(path)))
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = nothing_to_train(args)
    if reason is not None:
        print(reason)
        return 0

    # TensorFlow takes seconds to import: only pay for it when there is work to do.
    import keras

    limit_threads(args.threads)
    from training.model import build_model

    try:
        data = load_mnist(args.data)
    except DataUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATA_ERROR
    print(f"Training on {len(data.x_train)} images from {data.source} (sha256 {data.sha256[:12]}…)")

    # Seeds Python, numpy and TensorFlow (weights, shuffling, dropout, augmentation). Full
    # op determinism would cost a fifth of the training budget; CPU kernels here repeat anyway.
    keras.utils.set_random_seed(args.seed)
    recipe = RECIPES[args.arch]
    epochs = args.epochs or recipe.epochs
    feedback = None
    if args.feedback_dir is not None:
        if not args.feedback_dir.is_dir():
            print(f"error: --feedback-dir {args.feedback_dir} is not a folder", file=sys.stderr)
            return EXIT_DATA_ERROR
        feedback = read_feedback(args.feedback_dir)
    threads = args.threads or os.cpu_count() or 1
    splits = prepare(data, recipe.upload_domain, args.seed, threads, feedback)
    steps_per_epoch = -(-len(splits.x_train) // recipe.batch_size)
    model = build_model(args.arch, steps_per_epoch, epochs)
    history, duration_s = timed_fit(model, splits, recipe, epochs)

    result = evaluate(model, splits)
    print(f"Test accuracy: {result.accuracy:.4f}")
    if not passes_gate(result.accuracy, args.min_accuracy, args.force):
        return EXIT_BELOW_GATE
    publish_version(
        model,
        args,
        epochs=epochs,
        data=data,
        splits=splits,
        history=history,
        duration_s=duration_s,
        result=result,
    )
    return 0


if __name__ == "__main__":
    # oneDNN's kernels make a training step 1.3-1.8x faster than Eigen's on two AVX2 cores
    # (docs/benchmarks.md); TensorFlow turns them on by default only on some Intel CPUs.
    # Set before TensorFlow is imported; TF_ENABLE_ONEDNN_OPTS=0 in the environment keeps Eigen.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    sys.exit(main())
