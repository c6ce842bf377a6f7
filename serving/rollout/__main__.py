"""`python -m serving.rollout [OPTIONS] STEP`: one step of a rollout a run.

Exit codes: 0 done, 1 a step refused or timed out (or `status` found a server
unreachable), 2 the file could not be read or rewritten.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from contract import MODEL_NAME
from serving.rollout.servers import ModelServers
from serving.rollout.steps import DEFAULT_INTERVAL_S, DEFAULT_TIMEOUT_S, Rollout, RolloutError

DEFAULT_CONFIG = Path("serving/models.config")
DEFAULT_URL = "http://localhost:8501"
REQUEST_TIMEOUT_S = 5.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    # The options are accepted before or after the step's name: the parsers share them
    # without defaults (a step's copy would overwrite what came before it), added after.
    options = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    option = options.add_argument
    option("--config", type=Path, help=f"the models.config to edit (default: {DEFAULT_CONFIG})")
    option("--model-name", help=f"default: {MODEL_NAME}")
    option("--url", action="append", help="REST address of a model server to check; repeat it "
           f"for each process (default: {DEFAULT_URL})")
    option("--timeout", type=float,
           help=f"seconds each wait for the servers may take (default: {DEFAULT_TIMEOUT_S})")
    option("--interval", type=float,
           help=f"seconds between two looks at the servers (default: {DEFAULT_INTERVAL_S})")
    option("--dry-run", action="store_true", help="print, do not write")
    option("--after-write", metavar="COMMAND",
           help="shell command run after each write, with the file's path in $MODELS_CONFIG "
           "(e.g. to copy it into a Kubernetes ConfigMap)")
    parser = argparse.ArgumentParser(
        prog="python -m serving.rollout",
        description="Carry a model version from published to stable by editing models.config "
        "in the order TF Serving accepts, checking the model servers at each step.",
        parents=[options],
    )
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    def step(name: str, help_text: str) -> argparse.ArgumentParser:
        return steps.add_parser(name, help=help_text, description=help_text, parents=[options])

    step("status", "show the file's versions and labels and what each server serves")
    step("pin", "serve one version under both labels (before publishing a candidate)").add_argument(
        "version", type=int, nargs="?", help="default: the newest AVAILABLE version"
    )
    step("canary", "load a version, wait until it is AVAILABLE, label it canary").add_argument(
        "version", type=int
    )
    step("promote", "move stable to the canary's version")
    step("rollback", "point canary back at the stable version").add_argument(
        "--drop-label", action="store_true", help="remove the canary label instead"
    )
    step("retire", "unload every version no label points at")
    defaults = {
        "config": DEFAULT_CONFIG,
        "model_name": MODEL_NAME,
        "url": [DEFAULT_URL],
        "timeout": DEFAULT_TIMEOUT_S,
        "interval": DEFAULT_INTERVAL_S,
        "dry_run": False,
        "after_write": None,
    }
    return argparse.Namespace(**{**defaults, **vars(parser.parse_args(argv))})


def main(argv: Sequence[str] | None = None, *, transport: httpx.BaseTransport | None = None) -> int:
    """Run one step. `transport` replaces the network under the REST client (tests)."""
    args = parse_args(argv)
    with httpx.Client(timeout=REQUEST_TIMEOUT_S, transport=transport) as client:
        rollout = Rollout(
            args.config,
            ModelServers(args.url, args.model_name, client),
            timeout_s=args.timeout,
            interval_s=args.interval,
            dry_run=args.dry_run,
            after_write=args.after_write,
        )
        try:
            step = getattr(rollout, args.step)
            options = {k: v for k, v in vars(args).items() if k in ("version", "drop_label")}
            return step(**options) or 0
        except (RolloutError, OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1 if isinstance(exc, RolloutError) else 2


if __name__ == "__main__":
    sys.exit(main())
