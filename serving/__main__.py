"""Command line of the local model server, with tensorflow_model_server's flags.

One set of flags, spelled as TF Serving spells them (`--model_base_path`) or with dashes
(`--model-base-path`), two ways in:

- `python -m serving --model-base-path models/mnist --port 8501`: a developer's server, REST
  on `--port`, on loopback unless `--host` says otherwise;
- `tensorflow_model_server ...` (the image's entrypoint, `--tensorflow-model-server` here):
  exactly as compose and k8s start tensorflow/serving, so the image swaps in for it: `--port`
  is gRPC (not served here, said in one log line), REST on `--rest_api_port`, every interface.

Flags the server cannot honour are named in one start-up line; an unknown flag stops it.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from contract import MODEL_NAME

logger = logging.getLogger("serving")

TF_SERVING_ENTRYPOINT = "--tensorflow-model-server"
# Accepted for compose's and k8s' command lines, without an equivalent in this server.
NOT_HONOURED = {
    "rest_api_num_threads": "one event loop serves REST",
    "rest_api_timeout_in_ms": "requests are not timed out",
}


def _flag_value(text: str) -> bool:
    """A boolean flag written as TF Serving's flags are: --flag, --flag=true, --flag=false."""
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class _Parser(argparse.ArgumentParser):
    def flag(self, name: str, **options: object) -> None:
        """Add TF Serving's flag `name`, also spelled with dashes."""
        spellings = dict.fromkeys([f"--{name}", f"--{name.replace('_', '-')}"])
        if options.get("type") is _flag_value:
            options = {"nargs": "?", "const": True, "default": False, **options}
        self.add_argument(*spellings, dest=name, **options)  # type: ignore[arg-type]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else argv
    as_tf_serving = TF_SERVING_ENTRYPOINT in argv
    argv = [arg for arg in argv if arg != TF_SERVING_ENTRYPOINT]
    parser = _Parser(
        prog="tensorflow_model_server" if as_tf_serving else "python -m serving",
        description="A local model server that speaks TF Serving's REST API.",
        allow_abbrev=False,
    )
    if as_tf_serving:
        parser.flag("port", type=int, default=8500, help="gRPC port (not served here)")
        parser.flag("rest_api_port", type=int, default=0, help="REST port (0: no REST)")
        parser.set_defaults(host="0.0.0.0", model_name="default")  # noqa: S104 (as TF Serving)
    else:
        parser.add_argument("--port", "--rest-api-port", "--rest_api_port", type=int,
                            default=8501, dest="rest_api_port", help="REST port")
        parser.add_argument("--host", default="127.0.0.1")
        parser.set_defaults(port=0, model_name=MODEL_NAME)
    parser.flag("model_base_path", type=Path, help="folder of integer versions")
    parser.flag("model_name", help="the model's name with --model_base_path")
    parser.flag("model_config_file", type=Path, help="TF Serving models.config")
    parser.flag("model_config_file_poll_wait_seconds", type=float, default=0.0,
                help="re-read --model_config_file this often (0: read once)")
    parser.flag("file_system_poll_wait_seconds", type=float, default=1.0)
    parser.flag("allow_version_labels_for_unavailable_models", type=_flag_value,
                help="let a new label point at a version that has not loaded yet")
    parser.flag("enable_batching", type=_flag_value, help="batch requests server-side")
    parser.flag("batching_parameters_file", type=Path, help="BatchingParameters (text proto)")
    parser.flag("monitoring_config_file", type=Path, help="MonitoringConfig (text proto)")
    parser.flag("enable_model_warmup", type=_flag_value, default=True,
                help="replay assets.extra/tf_serving_warmup_requests before serving")
    parser.flag("tensorflow_intra_op_parallelism", type=int, default=1,
                help="threads one op may use, 0 for one per core (default %(default)s)")
    parser.flag("tensorflow_inter_op_parallelism", type=int, default=1,
                help="threads that run a call's ops, 0 for one per core (default %(default)s)")
    for name in NOT_HONOURED:
        parser.flag(name, type=int, help="accepted, not honoured")
    parser.add_argument("--log-level", "--log_level", default="info")
    args = parser.parse_args(argv)
    if (args.model_base_path is None) == (args.model_config_file is None):
        parser.error("give one of --model_base_path and --model_config_file")
    if args.batching_parameters_file and not args.enable_batching:
        # As TF Serving's server.cc refuses it at start.
        parser.error("--batching_parameters_file is set without --enable_batching=true")
    if args.rest_api_port == 0:
        parser.error("--rest_api_port is 0: this server serves REST only, give it a port")
    if args.rest_api_port == args.port:
        parser.error("--rest_api_port cannot be the same as --port")
    return args


def not_honoured(args: argparse.Namespace) -> list[str]:
    """The flags given that this server cannot honour, each with the reason."""
    found = [f"--port={args.port} (gRPC: REST only here)"] if args.port else []
    found += [
        f"--{name}={getattr(args, name)} ({why})"
        for name, why in NOT_HONOURED.items()
        if getattr(args, name) is not None
    ]
    if not args.enable_model_warmup:
        found.append("--enable_model_warmup=false (warm-up records are always replayed)")
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    import uvicorn

    from serving.batching import BatchingParameters
    from serving.server import ServerSettings, create_app
    from serving.tf_serving_config import (
        DEFAULT_MONITORING_PATH,
        LabelError,
        ModelSpec,
        check_version_labels,
        parse_model_config,
        read_batching_parameters,
        read_monitoring_path,
    )

    try:
        if args.model_config_file:
            models = parse_model_config(
                args.model_config_file.read_text(), relative_to=args.model_config_file.parent
            )
            # TF Serving assigns labels before anything has loaded, so without the flag
            # any label refuses to start, as tensorflow_model_server does.
            check_version_labels(models, {}, {}, args.allow_version_labels_for_unavailable_models)
        else:
            models = [ModelSpec(args.model_name, args.model_base_path)]
        batching = None  # as TF Serving without --enable_batching: each request runs at once
        if args.enable_batching:
            file = args.batching_parameters_file
            batching = read_batching_parameters(file) if file else BatchingParameters()
        monitoring = (
            read_monitoring_path(args.monitoring_config_file)
            if args.monitoring_config_file
            else DEFAULT_MONITORING_PATH
        )
    except LabelError as exc:
        print(
            f"error: {exc} (labels in a config read at start-up need "
            "--allow_version_labels_for_unavailable_models, as in TF Serving)",
            file=sys.stderr,
        )
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if ignored := not_honoured(args):
        logger.warning("Not honoured by this server: %s", ", ".join(ignored))
    settings = ServerSettings(
        models=models,
        batching=batching,
        poll_interval_s=args.file_system_poll_wait_seconds,
        monitoring_path=monitoring,
        model_config_file=args.model_config_file,
        model_config_poll_s=args.model_config_file_poll_wait_seconds,
        allow_version_labels_for_unavailable_models=args.allow_version_labels_for_unavailable_models,
    )
    import tensorflow as tf

    # As tensorflow_model_server's flags of the same names; before anything runs an op.
    tf.config.threading.set_intra_op_parallelism_threads(args.tensorflow_intra_op_parallelism)
    tf.config.threading.set_inter_op_parallelism_threads(args.tensorflow_inter_op_parallelism)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.rest_api_port,
        log_level=args.log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=30,
        timeout_keep_alive=75,  # long-lived client pools, as TF Serving allows
    )
    return 0


if __name__ == "__main__":
    # oneDNN's convolutions cost about a quarter less CPU than Eigen's once a few images
    # share a call (TensorFlow turns them on by default only on some Intel CPUs). Set before
    # TensorFlow is imported; TF_ENABLE_ONEDNN_OPTS=0 in the environment keeps Eigen.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    sys.exit(main())
