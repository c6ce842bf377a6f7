"""A newcomer's first minutes: time from `make run` with no model to the first answered
/predict, and /predict latency while the full recipe trains in the background, against the
same stack with nothing training.

    python -m bench.first_prediction --data mnist.npz [--seconds 30]
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.digits import uploads
from bench.loadgen import MULTIPART, Load, multipart, run_load
from contract import MODEL_NAME
from scripts.services import ROOT, quiet_stack, until

SERVING_PORT, GATEWAY_PORT = 18801, 18802
GATEWAY = f"http://127.0.0.1:{GATEWAY_PORT}"


def latency(seconds: float) -> dict[int, Load]:
    bodies = [multipart([upload], "file") for upload in uploads()]
    return {
        c: run_load(lambda i: (f"{GATEWAY}/predict", bodies[i % 16], MULTIPART), c, seconds)
        for c in (1, 8)
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.first_prediction", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    models = Path(tempfile.mkdtemp(prefix="first-prediction-")) / MODEL_NAME
    command = [sys.executable, "-m", "scripts.local_stack", "--data", args.data]
    command += ["--model-dir", str(models), "--serving-port", str(SERVING_PORT)]
    stack = subprocess.Popen(
        [*command, "--gateway-port", str(GATEWAY_PORT)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    try:
        upload = {"file": uploads()[0]}
        until_first = until(
            lambda: httpx.post(f"{GATEWAY}/predict", files=upload, timeout=5).status_code == 200,
            "an answer from /predict",
            timeout_s=600,
        )
        # Measure while TensorFlow trains, past the redrawing of the digits that comes first.
        log = models.parent / "training.log"
        until(lambda: "Redrew" in log.read_text(), "the full training past its redrawing", 600)
        time.sleep(10)
        training = latency(args.seconds)
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(timeout=60)

    # The same stack, nothing training: the model server and the gateway (2 workers).
    with quiet_stack(models, SERVING_PORT, GATEWAY_PORT, workers=2):
        idle = latency(args.seconds)

    print(f"\nFirst minutes of the local stack, {os.cpu_count()} cores")
    print(f"time from start (no model) to the first answered /predict: {until_first:.0f} s\n")
    print("| /predict | concurrency | requests/s | p50 ms | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, results in (("full model training", training), ("nothing training", idle)):
        for concurrency, r in results.items():
            print(
                f"| {name} | {concurrency} | {r.rate:.0f} | {r.p50_ms:.1f} | "
                f"{r.p99_ms:.1f} | {r.errors} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
