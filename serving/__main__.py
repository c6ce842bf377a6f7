"""Command line: `python -m serving --model-base-path models/mnist --port 8501`.

Flags follow tensorflow_model_server's own names where they overlap, so the same
configuration files drive both.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from contract import MODEL_NAME


def _flag_value(text: str) -> bool:
    """A boolean flag written as TF Serving's flags are: --flag, --flag=true, --flag=false."""
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m serving",
        description="A local model server that speaks TF Serving's REST API.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-base-path", type=Path, help="folder of integer versions")
    source.add_argument("--model-config-file", type=Path, help="TF Serving models.config")
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", "--rest-api-port", type=int, default=8501, dest="port")
    parser.add_argument("--batching-parameters-file", type=Path)
    parser.add_argument("--monitoring-config-file", type=Path)
    parser.add_argument("--file-system-poll-wait-seconds", type=float, default=1.0)
    parser.add_argument(
        "--model-config-file-poll-wait-seconds",
        type=float,
        default=0.0,
        help="re-read --model-config-file this often (0: read once, as TF Serving)",
    )
    parser.add_argument(
        "--allow-version-labels-for-unavailable-models",
        type=_flag_value,
        nargs="?",
        const=True,
        default=False,
        help="let a new label point at a version that has not loaded yet",
    )
    # One model call at a time, on one core, with batches as large as the load makes them:
    # the least CPU per request (the event loop has the other core). More threads split
    # batches for little gain on a machine of one or two cores.
    parser.add_argument(
        "--model-threads",
        type=int,
        default=1,
        help="model calls at a time; batches beyond that wait and grow (default %(default)s)",
    )
    parser.add_argument(
        "--tensorflow-intra-op-parallelism",
        type=int,
        default=1,
        help="threads one op may use, 0 for one per core (default %(default)s)",
    )
    parser.add_argument(
        "--tensorflow-inter-op-parallelism",
        type=int,
        default=1,
        help="threads that run a call's ops, 0 for one per core (default %(default)s)",
    )
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


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
        batching = (
            read_batching_parameters(args.batching_parameters_file)
            if args.batching_parameters_file
            else BatchingParameters()
        )
        monitoring = (
            read_monitoring_path(args.monitoring_config_file)
            if args.monitoring_config_file
            else DEFAULT_MONITORING_PATH
        )
    except LabelError as exc:
        print(
            f"error: {exc} (labels in a config read at start-up need "
            "--allow-version-labels-for-unavailable-models, as in TF Serving)",
            file=sys.stderr,
        )
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = ServerSettings(
        models=models,
        batching=batching,
        poll_interval_s=args.file_system_poll_wait_seconds,
        monitoring_path=monitoring,
        model_threads=args.model_threads,
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
        port=args.port,
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
