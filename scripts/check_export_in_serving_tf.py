"""Load a published model the way the pinned tensorflow/serving image does, with the
TensorFlow inside that image, and run it.

Training may run a newer TensorFlow than the image's; an op or attribute the older runtime
does not know makes TF Serving fail to load the version. Like TF Serving, this loads the
newest version with the TF1 session loader (the "serve" MetaGraph), runs the signatures by
the tensor names of their signature_defs (training/signature_check.py's checks), and replays
every record of assets.extra/tf_serving_warmup_requests, whose failure fails TF Serving's load.
Any failure exits 1 with a message that says what failed.

`make check-export MODEL_DIR=models/mnist [EXPECT_DIGIT=1]` builds the environment it runs in
(.venv-serving-image/: the TensorFlow pinned in requirements-serving-image-tf.txt) and runs

    .venv-serving-image/bin/python -m scripts.check_export_in_serving_tf --model-dir models/mnist
"""

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import tensorflow as tf

from contract import (
    ASSETS_EXTRA_DIR,
    NUM_CLASSES,
    SIGNATURE_IMAGE,
    SIGNATURE_IMAGE_BYTES,
    SIGNATURE_PIXELS,
    version_folders,
)
from training.signature_check import Array, check_signatures

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements-serving-image-tf.txt"
PREDICT_METHOD = "tensorflow/serving/predict"
SIGNATURES = (SIGNATURE_IMAGE, SIGNATURE_IMAGE_BYTES, SIGNATURE_PIXELS)
WARMUP_FILE = f"{ASSETS_EXTRA_DIR}/tf_serving_warmup_requests"


def run_by_tensor_names(
    session: Any, signature: Any, feeds: dict[str, Array], outputs: list[str] | None = None
) -> dict[str, Array]:
    """Feed and fetch by the signature_def's tensor names, as TF Serving runs a signature."""
    aliases = outputs or sorted(signature.outputs)
    fetches = [signature.outputs[alias].name for alias in aliases]
    feed_dict = {signature.inputs[alias].name: value for alias, value in feeds.items()}
    return dict(zip(aliases, session.run(fetches, feed_dict=feed_dict), strict=True))


def replay_warmup(session: Any, signatures: Any, version_dir: Path) -> int:
    """Parse and run every warm-up record as TF Serving does before it serves the version."""
    from tensorflow_serving.apis.prediction_log_pb2 import PredictionLog

    path = version_dir / WARMUP_FILE
    if not path.exists():
        return 0
    records = list(tf.compat.v1.io.tf_record_iterator(str(path)))
    for number, record in enumerate(records, start=1):
        request = PredictionLog.FromString(record).predict_log.request
        name = request.model_spec.signature_name or SIGNATURE_IMAGE
        where = f"warm-up record {number} ({name})"
        if name not in signatures:
            raise ValueError(f"{where}: the model has no such signature")
        signature = signatures[name]
        for alias, proto in request.inputs.items():
            # A session would cast a feed silently; TF Serving refuses another dtype.
            if alias in signature.inputs and proto.dtype != signature.inputs[alias].dtype:
                raise ValueError(f"{where}: input {alias!r} is {tf.as_dtype(proto.dtype).name}")
        feeds = {alias: tf.make_ndarray(proto) for alias, proto in request.inputs.items()}
        try:
            run_by_tensor_names(session, signature, feeds, list(request.output_filter))
        except (KeyError, tf.errors.OpError) as exc:
            raise ValueError(f"{where} failed to run: {exc}") from exc
    return len(records)


def check(version_dir: Path, expect_digit: int | None) -> None:
    print(f"==> {version_dir} with TensorFlow {tf.__version__} (TF1 session loader, tag 'serve')")
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version_dir))
        signatures = meta_graph.signature_def
        print(f"    loaded; signatures: {', '.join(sorted(signatures))}")
        for name in SIGNATURES:
            if name not in signatures or signatures[name].method_name != PREDICT_METHOD:
                raise ValueError(f"no {PREDICT_METHOD!r} signature {name!r}")

        def run(name: str, input_name: str, batch: Array) -> dict[str, Array]:
            return run_by_tensor_names(session, signatures[name], {input_name: batch})

        read = check_signatures(
            run,
            lambda page: session.run(tf.io.encode_png(page)),
            lambda page: session.run(tf.io.encode_jpeg(page, quality=90)),
        )
        print(f"    a drawn 1 was read as {read}; blank and malformed inputs refused on their rows")
        if expect_digit is not None and {d for ds in read.values() for d in ds} != {expect_digit}:
            raise ValueError(f"the drawn 1 was read as {read}; --expect-digit {expect_digit}")
        replayed = replay_warmup(session, signatures, version_dir)
    print(f"==> OK: loads and runs; {replayed} warm-up record(s) replayed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.check_export_in_serving_tf", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="e.g. models/mnist")
    parser.add_argument("--version", type=int, help="check this version instead of the newest")
    parser.add_argument("--expect-digit", type=int, choices=range(NUM_CLASSES))
    parser.add_argument(
        "--any-tensorflow", action="store_true", help="run in whatever TensorFlow this is"
    )
    args = parser.parse_args(argv)

    pinned = re.findall(r"^tensorflow-cpu==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    if [tf.__version__] != pinned and not args.any_tensorflow:
        print(f"FAILED: TensorFlow {tf.__version__}, not the image's {pinned}", file=sys.stderr)
        return 1
    tf.get_logger().setLevel("ERROR")  # the TF1 loader's deprecation notices
    versions = version_folders(args.model_dir)
    version_dir = versions.get(args.version or max(versions, default=0))
    try:
        if version_dir is None:
            raise ValueError(f"no version {args.version or ''} under {args.model_dir}")
        check(version_dir, args.expect_digit)
    except Exception as exc:  # any load or run error is the finding
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
