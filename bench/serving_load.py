"""Load on the local model server's :predict, with already-normalised 28x28 tensors.

    python -m bench.serving_load --model-dir models/mnist [--seconds 10] [--concurrency 1 8 32 64]

Bodies are the normalised tensors the gateway makes of realistic uploads. Starts
`python -m serving` with serving/batching.config on a loopback port; the load generator
runs on the same machine and shares its cores.
"""

import argparse
import os
import sys
from pathlib import Path

from bench.digits import normalised_bodies, uploads
from bench.loadgen import run_load, table
from scripts.services import model_server_command, model_url, start, stop


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.serving_load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--port", type=int, default=18601)
    args = parser.parse_args()

    bodies = normalised_bodies(uploads())
    url = f"http://127.0.0.1:{args.port}"
    server = start(
        model_server_command(args.model_dir, args.port, "--log-level", "warning"),
        model_url(url),
        {"TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    try:
        headers = {"Content-Type": "application/json"}
        predict = f"{model_url(url)}:predict"
        run_load(
            lambda i: (predict, {"data": bodies[i % 16], "headers": headers}), 8, 2.0
        )  # warm up
        rows = [
            (
                "model server :predict",
                run_load(
                    lambda i: (predict, {"data": bodies[i % 16], "headers": headers}),
                    c,
                    args.seconds,
                ),
            )
            for c in args.concurrency
        ]
    finally:
        stop([server])
    print(
        table(f"\nLocal model server, {os.cpu_count()} cores shared with the load generator", rows)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
