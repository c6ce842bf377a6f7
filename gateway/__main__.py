"""Command line: `python -m gateway [--port 8000]`, configured by GATEWAY_* variables."""

import argparse
import logging
import os
import shutil
import sys
import tempfile

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers", type=int, default=1, help="processes; one per core the gateway may use"
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(message)s")

    import uvicorn

    from gateway.config import MULTIPROCESS_DIR_VARIABLE, Settings
    from gateway.feedback import FeedbackStore

    # Fail here, with the variable named, rather than inside each worker.
    try:
        settings = Settings()
        if settings.feedback_dir is not None:
            FeedbackStore(settings.feedback_dir, settings.feedback_max_items).prepare()
    except (ValidationError, RuntimeError) as exc:  # the first names the Settings field
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.workers > 1:
        # The workers share one listening socket; without this, libuv's accept loop lets
        # whichever worker wakes first take a whole burst of new connections.
        os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")
    metrics_dir = None
    if args.workers > 1 and not os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        # Workers inherit this before they import prometheus_client (nothing here imports
        # it, so a server that forks its workers from this process works too): /metrics sums
        # them all.
        metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ[MULTIPROCESS_DIR_VARIABLE] = metrics_dir
    try:
        uvicorn.run(
            "gateway.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            access_log=False,
            loop="uvloop",
            http="httptools",
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
