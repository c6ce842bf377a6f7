"""Train recipes on the real MNIST, one after another, and print accuracy, time and ratios.

    python -m bench.train_recipes --data mnist.npz [--arch quick default] [--runs 1]

Each run is a fresh `python -m training` process (TensorFlow import, data load, redrawing,
training, evaluation and export all counted), publishing into a temporary folder. The recipes
run in one invocation so that their ratios come from one machine state.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from contract import model_card_path
from scripts.services import ROOT
from training.recipes import ARCHITECTURES
from training.versions import next_version

SEED = 42  # the first run's; each further run of a recipe the next


@dataclass(frozen=True)
class Run:
    arch: str
    seed: int
    accuracy: float
    fit_s: float
    wall_s: float
    cpu_s: float  # user + system time of the training process


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train(arch: str, seed: int, data: str, models: Path) -> Run:
    version = models / str(next_version(models))
    cpu_before, started = children_cpu_s(), time.monotonic()
    command = [sys.executable, "-m", "training", "--data", data, "--model-dir", str(models)]
    command += ["--arch", arch, "--seed", str(seed), "--min-accuracy", "0"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run(command, cwd=ROOT, check=True, env=env)
    wall, cpu = time.monotonic() - started, children_cpu_s() - cpu_before
    card = json.loads(model_card_path(version).read_text())
    return Run(arch, seed, card["test_accuracy"], card["training_duration_s"], wall, cpu)


def print_table(runs: list[Run]) -> None:
    print(f"\nTraining benchmark: {os.cpu_count()} cores; ratios are to the first recipe's median")
    print(
        f"{'recipe':>8} {'seed':>5} {'test accuracy':>14} {'fit (s)':>8} {'wall (s)':>9} "
        f"{'CPU (s)':>8} {'wall ratio':>11} {'CPU ratio':>10}"
    )
    first = [run for run in runs if run.arch == runs[0].arch]
    base_wall = statistics.median(run.wall_s for run in first)
    base_cpu = statistics.median(run.cpu_s for run in first)
    for run in runs:
        print(
            f"{run.arch:>8} {run.seed:>5} {run.accuracy:>14.2%} {run.fit_s:>8.0f} "
            f"{run.wall_s:>9.0f} {run.cpu_s:>8.0f} {run.wall_s / base_wall:>11.2f} "
            f"{run.cpu_s / base_cpu:>10.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.train_recipes", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--arch", nargs="+", choices=ARCHITECTURES, default=["quick", "default"])
    parser.add_argument("--runs", type=int, default=1, help="runs per recipe, seeds counting up")
    args = parser.parse_args()

    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for arch in args.arch:
            for run in range(args.runs):
                runs.append(train(arch, SEED + run, args.data, Path(scratch)))
                print_table(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
