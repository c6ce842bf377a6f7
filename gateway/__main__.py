"""Command line: `python -m gateway [--port 8000]`, configured by GATEWAY_* variables."""

import argparse
import logging
import sys

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(message)s")
    # One access line per request is ours; httpx would add one per upstream call.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    import uvicorn

    from gateway.config import Settings

    try:
        Settings()  # fail here, with the variable named, rather than inside a worker
    except ValidationError as exc:
        print(f"error: invalid gateway settings: {exc}", file=sys.stderr)
        return 2
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
