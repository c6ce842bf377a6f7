"""Run the whole stack on this machine without Docker: train a model if none exists, start
the local model server (in place of the tensorflow/serving image) and the gateway, print
where they listen and a curl that classifies a sample digit. Ctrl-C stops everything.

    python scripts/local_stack.py [--data mnist.npz] [--model-dir models/mnist]
"""

import argparse
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from services import ROOT, gateway_command, model_server_command, start, stop  # noqa: E402


def sample_digit(path: Path) -> None:
    """A hand-drawn-looking 7: dark marker strokes on white, as a phone or canvas gives."""
    image = Image.new("L", (280, 280), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(70, 60), (210, 60), (120, 230)], fill=20, width=18, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("MNIST_PATH"))
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "mnist")
    parser.add_argument("--serving-port", type=int, default=8501)
    parser.add_argument("--gateway-port", type=int, default=8000)
    parser.add_argument(
        "--gateway-workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="gateway processes (default: one per core, up to 2)",
    )
    args = parser.parse_args()

    print("==> Making sure a model exists (trains one the first time, a few minutes)", flush=True)
    train = [sys.executable, "-m", "training", "--if-missing", "--model-dir", str(args.model_dir)]
    if args.data:
        train += ["--data", args.data]
    if subprocess.run(train, cwd=ROOT).returncode != 0:
        return 1

    processes: list[subprocess.Popen[bytes]] = []
    # Ctrl-C and `kill` both stop everything this script started.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        print(f"==> Starting the model server on :{args.serving_port}", flush=True)
        serving_url = f"http://127.0.0.1:{args.serving_port}"
        processes.append(
            start(
                model_server_command(args.model_dir, args.serving_port),
                f"{serving_url}/v1/models/mnist",
            )
        )
        print(f"==> Starting the gateway on :{args.gateway_port}", flush=True)
        gateway_url = f"http://127.0.0.1:{args.gateway_port}"
        env = {
            "GATEWAY_TF_SERVING_URL": serving_url,
            "GATEWAY_MODEL_BASE_PATH": str(args.model_dir),
        }
        processes.append(
            start(
                gateway_command(args.gateway_port, "--workers", str(args.gateway_workers)),
                f"{gateway_url}/readyz",
                env,
                timeout_s=60,
            )
        )

        sample = args.model_dir.parent / "sample-digit.png"
        sample_digit(sample)
        print(
            f"\nThe stack is up.\n"
            f"  gateway       {gateway_url}   (API docs: {gateway_url}/docs)\n"
            f"  model server  {serving_url}   (TF Serving REST API)\n\n"
            f"Classify a sample digit:\n"
            f"  curl -F file=@{sample} {gateway_url}/predict\n\n"
            f"Press Ctrl-C to stop.",
            flush=True,
        )
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        print("error: a service stopped; shutting down the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n==> Stopping", flush=True)
        return 0
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
