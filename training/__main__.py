"""Command line: `python -m training --data mnist.npz --model-dir models/mnist`.

Trains the CNN, evaluates it on the test split and publishes the next SavedModel version
(training.pipeline does the work). Exit codes: 0 published (or nothing to do with
--if-missing or --unless-published), 1 below --min-accuracy, 2 data or usage problem.
"""

import argparse
import os
import sys
from pathlib import Path

from contract import MODEL_NAME
from training.pipeline import TrainingOptions, train_and_publish
from training.recipes import ARCHITECTURES


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


def main(argv: list[str] | None = None) -> int:
    return train_and_publish(TrainingOptions(**vars(parse_args(argv))))


if __name__ == "__main__":
    # oneDNN's kernels make a training step 1.3-1.8x faster than Eigen's on two AVX2 cores
    # (docs/benchmarks.md); TensorFlow turns them on by default only on some Intel CPUs.
    # Set before TensorFlow is imported; TF_ENABLE_ONEDNN_OPTS=0 in the environment keeps Eigen.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    sys.exit(main())
