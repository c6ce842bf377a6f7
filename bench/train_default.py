"""Train the default model on the real MNIST and print test accuracy and wall time.

    python -m bench.train_default --data mnist.npz [--arch default] [--runs 1] [--keep models/mnist]

Each run is a fresh `python -m training` process (TensorFlow import, data load, training,
evaluation and export all counted), publishing into a temporary folder, or into --keep.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contract import model_card_path
from scripts.services import ROOT
from training.versions import next_version


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.train_default", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--arch", default="default")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, help="publish here and keep the model")
    args = parser.parse_args()

    rows = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as scratch:
            models = str(args.keep) if args.keep else scratch
            version = Path(models) / str(next_version(Path(models)))
            started = time.monotonic()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "training",
                    "--data",
                    args.data,
                    "--model-dir",
                    models,
                    "--arch",
                    args.arch,
                    "--seed",
                    str(args.seed + run),
                    "--min-accuracy",
                    "0",
                ],
                cwd=ROOT,
                check=True,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
            )
            wall = time.monotonic() - started
            card = json.loads(model_card_path(version).read_text())
        rows.append((args.seed + run, card["test_accuracy"], card["training_duration_s"], wall))

    print(f"\nTraining benchmark: arch={args.arch}, {os.cpu_count()} cores")
    print(f"{'seed':>6} {'test accuracy':>14} {'fit time (s)':>13} {'wall time (s)':>14}")
    for seed, accuracy, fit, wall in rows:
        print(f"{seed:>6} {accuracy:>14.4%} {fit:>13.1f} {wall:>14.1f}")
    if len(rows) > 1:
        print(
            f"{'median':>6} {statistics.median(r[1] for r in rows):>14.4%} "
            f"{statistics.median(r[2] for r in rows):>13.1f} "
            f"{statistics.median(r[3] for r in rows):>14.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
