"""Command line: `python -m training --data mnist.npz --model-dir models/mnist`.

Trains the CNN, evaluates it on the test split and publishes the next SavedModel version.
Exit codes: 0 published (or nothing to do with --if-missing), 1 below --min-accuracy,
2 data or usage problem.
"""

import argparse
import sys
import time
from pathlib import Path

from contract import NUM_CLASSES
from training.recipes import ARCHITECTURES, RECIPES
from training.versions import existing_versions

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
        default=Path("models/mnist"),
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
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    versions = existing_versions(args.model_dir)
    if args.if_missing and versions:
        print(f"Model version {versions[-1]} exists in {args.model_dir}; nothing to train.")
        return 0

    # TensorFlow takes seconds to import: only pay for it when there is work to do.
    import keras
    import numpy as np

    from training import report
    from training.data import DataUnavailable, load_mnist
    from training.export import publish
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
    x_train = (data.x_train.astype("float32") / 255.0)[..., None]
    x_test = (data.x_test.astype("float32") / 255.0)[..., None]
    y_train = keras.utils.to_categorical(data.y_train, NUM_CLASSES)
    y_test = keras.utils.to_categorical(data.y_test, NUM_CLASSES)
    steps_per_epoch = -(-len(x_train) // recipe.batch_size)
    model = build_model(args.arch, steps_per_epoch, epochs)

    started = time.monotonic()
    history = model.fit(
        x_train,
        y_train,
        batch_size=recipe.batch_size,
        epochs=epochs,
        # The test split is watched for the curves only; nothing is selected on it.
        validation_data=(x_test, y_test),
        verbose=1 if sys.stdout.isatty() else 2,
    )
    duration = time.monotonic() - started

    probabilities = model.predict(x_test, batch_size=1024, verbose=0)
    predicted = probabilities.argmax(axis=1)
    accuracy = float((predicted == data.y_test).mean())
    picked = probabilities[np.arange(len(predicted)), data.y_test.astype(np.int64)]
    loss = float(-np.log(np.clip(picked, 1e-7, 1.0)).mean())
    matrix = report.confusion_matrix(data.y_test, predicted)
    print(f"Test accuracy: {accuracy:.4f}")
    if accuracy < args.min_accuracy and not args.force:
        print(
            f"Not published: test accuracy {accuracy:.4f} is below --min-accuracy "
            f"{args.min_accuracy}; train longer or pass --force.",
            file=sys.stderr,
        )
        return EXIT_BELOW_GATE

    card = report.build_model_card(
        arch=args.arch,
        epochs=epochs,
        seed=args.seed,
        accuracy=accuracy,
        loss=loss,
        matrix=matrix,
        data_source=data.source,
        data_sha256=data.sha256,
        train_examples=len(data.x_train),
        test_examples=len(data.x_test),
        duration_s=duration,
        parameters=model.count_params(),
    )
    path = publish(
        model,
        args.model_dir,
        card,
        extra_files={
            "confusion_matrix.png": report.confusion_matrix_png(matrix, accuracy),
            "training_curves.png": report.training_curves_png(history.history),
        },
    )
    card["version"] = int(path.name)
    print(report.summary_table(card, str(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
