"""Run the whole stack on this machine without Docker: the local model server (in place of
the tensorflow/serving image) and the gateway, with a model trained the first time.

The first prediction comes early: with no model yet, a quick model is trained and served
first; the full recipe then trains in the background, at low priority on fewer threads, and
the model server swaps its version in when it is published. A later run skips every recipe
already published. Ctrl-C stops everything, training included.

    python -m scripts.local_stack [--data mnist.npz] [--model-dir models/mnist]
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from PIL import Image

from contract import MODEL_NAME
from scripts.services import ROOT, gateway_command, model_server_command, model_url, start, stop
from training.signature_check import SEVEN, drawn_page
from training.versions import published_recipes

QUICK, FULL = "quick", "default"


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def training_command(args: argparse.Namespace, recipe: str, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "training", "--model-dir", str(args.model_dir)]
    command += ["--arch", recipe, "--unless-published", *extra]
    if args.epochs:
        command += ["--epochs", str(args.epochs)]
    if args.min_accuracy is not None:
        command += ["--min-accuracy", str(args.min_accuracy)]
    return command + (["--data", args.data] if args.data else [])


def _lower_priority() -> None:
    os.nice(10)  # serving comes first; training takes what is left


def train_in_background(args: argparse.Namespace, log_path: Path) -> subprocess.Popen[str]:
    """The full recipe at low priority on all cores but one; its progress lines are echoed."""
    threads = max(1, (os.cpu_count() or 1) - 1)
    process = subprocess.Popen(
        training_command(args, FULL, "--threads", str(threads)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_lower_priority,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )

    def echo() -> None:
        assert process.stdout is not None
        with log_path.open("a") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                if line.startswith(("Progress:", "Test accuracy", "Redrew", "Not published")):
                    print(f"  [full model] {line.strip()}", flush=True)

    threading.Thread(target=echo, daemon=True).start()
    return process


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.local_stack", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--data", default=os.environ.get("MNIST_PATH"))
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / MODEL_NAME)
    parser.add_argument("--serving-port", type=int, default=8501)
    parser.add_argument("--gateway-port", type=int, default=8000)
    parser.add_argument(
        "--gateway-workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="gateway processes (default: one per core, up to 2)",
    )
    # For trials and tests on small data: every recipe's epochs, and the publishing gate.
    parser.add_argument("--epochs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--min-accuracy", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()

    processes: list[subprocess.Popen[bytes]] = []
    training: subprocess.Popen[str] | None = None
    # Ctrl-C and `kill` both stop everything this script started.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        published = published_recipes(args.model_dir)
        if not published:
            print(
                "==> No model yet: training a quick one first (about a minute on 2 cores); "
                "the full model follows in the background",
                flush=True,
            )
            if subprocess.run(training_command(args, QUICK), cwd=ROOT).returncode != 0:
                return 1

        print(f"==> Starting the model server on :{args.serving_port}", flush=True)
        serving_url = f"http://127.0.0.1:{args.serving_port}"
        command = model_server_command(args.model_dir, args.serving_port)
        processes.append(start(command, model_url(serving_url)))
        print(f"==> Starting the gateway on :{args.gateway_port}", flush=True)
        gateway_url = f"http://127.0.0.1:{args.gateway_port}"
        env = {"GATEWAY_TF_SERVING_URL": serving_url}
        env["GATEWAY_MODEL_BASE_PATH"] = str(args.model_dir)
        command = gateway_command(args.gateway_port, "--workers", str(args.gateway_workers))
        processes.append(start(command, f"{gateway_url}/readyz", env, timeout_s=60))

        log_path = args.model_dir.parent / "training.log"
        if FULL not in published_recipes(args.model_dir).values():
            training = train_in_background(args, log_path)
            plan = (
                f"training the full model in the background (low priority; log: {log_path}).\n"
                "                It is published as the next version and swapped in under "
                "traffic; progress shows below."
            )
        else:
            plan = "the full model is published; nothing to train."

        sample = args.model_dir.parent / "sample-digit.png"
        # The marker 7 of the export's warm-up request, as a canvas sends it.
        Image.fromarray(drawn_page(SEVEN, 280)[..., 0]).save(sample)
        print(
            f"\nThe stack is up.\n"
            f"  gateway       {gateway_url}\n"
            f"  API docs      {gateway_url}/docs\n"
            f"  web page      {gateway_url}/ui   (draw a digit)\n"
            f"  served model  {gateway_url}/model\n"
            f"  model server  {serving_url}   (TF Serving REST API)\n"
            f"  training      {plan}\n\n"
            f"Classify a sample digit:\n"
            f"  curl -F file=@{sample} {gateway_url}/predict\n\n"
            f"Press Ctrl-C to stop.",
            flush=True,
        )
        while all(process.poll() is None for process in processes):
            if training is not None and training.poll() is not None:
                outcome = "published" if training.returncode == 0 else "failed"
                print(
                    f"==> The full model's training {outcome}; see {log_path}. The model "
                    "server serves the newest version.",
                    flush=True,
                )
                training = None
            time.sleep(0.5)
        print("error: a service stopped; shutting down the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n==> Stopping", flush=True)
        return 0
    finally:
        stop([*processes, training])


if __name__ == "__main__":
    sys.exit(main())
