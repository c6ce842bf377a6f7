#!/usr/bin/env python3
"""Load a published model the way the pinned tensorflow/serving image does, with the
TensorFlow version inside that image, and run it.

TF Serving loads a version with the TF1 session loader (SavedModelBundle: the "serve"
MetaGraph, its variables and init op, then signatures run by tensor name) and replays
assets.extra/tf_serving_warmup_requests before it marks the version AVAILABLE. Training
may run a newer TensorFlow than the image's; an op or attribute the older runtime does not
know makes the load fail there. This script does the same steps with that TensorFlow:

1. loads the newest integer version under --model-dir with
   tf.compat.v1.saved_model.loader.load(sess, ["serve"], path);
2. checks the signatures `serving_default` (input `image`, float32 [-1, 28, 28, 1]),
   `predict_image_bytes` (input `image_bytes`, string [-1]) and `predict_pixels` (input
   `pixels`, string [-1] of 784 raw uint8 pixels), each answering `probabilities` float32
   [-1, 10], `digit` int64 [-1], `confidence` float32 [-1] and `refusal` string [-1];
3. runs them, by the tensor names in the MetaGraph's signature_def, on a digit drawn here
   (a 28x28 float image; PNG and JPEG bytes; the same image as 784 uint8 pixels), and checks
   shapes, dtypes, that the probabilities sum to one, that digit and confidence agree with
   them, that `predict_pixels` answers as `serving_default` does on the same pixels, and that
   a blank PNG and a string that is not 784 bytes are refused on their own rows (digit -1,
   a refusal sentence) while the rows beside them are answered;
4. replays every record of the warm-up file, whatever signature it names, with TF
   Serving's rules (PredictionLog records, predict_log only, at most 1000 records, the
   request's inputs exactly the signature's, dtypes equal, output_filter names known).

Any failure exits non-zero with a message that says what failed.

It runs in its own virtual environment (.venv-serving-image/, or $SERVING_IMAGE_VENV) with
tensorflow-cpu at the version pinned in requirements-serving-image-tf.txt and
tensorflow-serving-api at the same version (installed with --no-deps). The environment is
created on first use and again whenever that file is newer than its stamp; then the
script re-runs itself inside it. Any python3 can start it, from the repository root:

    python3 -m scripts.check_export_in_serving_tf --model-dir models/mnist [--expect-digit 1]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

# Standard library only, like the part of this script that runs before its environment.
from contract import (
    ASSETS_EXTRA_DIR,
    IMAGE_SIZE,
    INPUT_IMAGE,
    INPUT_IMAGE_BYTES,
    INPUT_PIXELS,
    NUM_CLASSES,
    OUTPUT_CONFIDENCE,
    OUTPUT_DIGIT,
    OUTPUT_PROBABILITIES,
    OUTPUT_REFUSAL,
    REFUSAL_BLANK,
    REFUSED_DIGIT,
    SIGNATURE_IMAGE,
    SIGNATURE_IMAGE_BYTES,
    SIGNATURE_PIXELS,
    version_folders,
)

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements-serving-image-tf.txt"
DEFAULT_VENV = ROOT / ".venv-serving-image"
STAMP_NAME = ".installed"
INSIDE_MARKER = "CHECK_EXPORT_IN_SERVING_TF_INSIDE"

OUTPUTS = (OUTPUT_PROBABILITIES, OUTPUT_DIGIT, OUTPUT_CONFIDENCE, OUTPUT_REFUSAL)
PREDICT_METHOD = "tensorflow/serving/predict"
WARMUP_FILE = f"{ASSETS_EXTRA_DIR}/tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's WarmupConsts::kMaxNumRecords


class CheckFailed(Exception):
    """A check failed; the message says which and why."""


# --------------------------------------------------------------------------------------
# The virtual environment (standard library only: this part runs in any python3).


def pinned_tf_version() -> str:
    match = re.search(r"^tensorflow-cpu==(\S+)", REQUIREMENTS.read_text(), flags=re.MULTILINE)
    if not match:
        raise SystemExit(f"{REQUIREMENTS.name} pins no tensorflow-cpu==X")
    return match.group(1)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path) -> None:
    """Create or refresh the environment when its stamp is missing or older than the pins."""
    stamp = venv / STAMP_NAME
    if stamp.exists() and stamp.stat().st_mtime >= REQUIREMENTS.stat().st_mtime:
        return
    version = pinned_tf_version()
    print(f"==> Installing tensorflow-cpu=={version} into {venv}", file=sys.stderr, flush=True)
    pip = [str(venv_python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # Keep the environment out of version control without touching .gitignore.
        (venv / ".gitignore").write_text("*\n")
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
        # The protos of PredictionLog; the package asks for the `tensorflow` wheel, which
        # tensorflow-cpu already provides, hence --no-deps.
        subprocess.run([*pip, "--no-deps", f"tensorflow-serving-api=={version}"], check=True)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"could not set up {venv}: {exc}") from exc
    stamp.touch()


def reexec_in_venv(venv: Path) -> None:
    ensure_venv(venv)
    env = {**os.environ, INSIDE_MARKER: "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    python = str(venv_python(venv))
    # The same module from the same folder: it imports the contract as this run did.
    os.execve(python, [python, "-m", "scripts.check_export_in_serving_tf", *sys.argv[1:]], env)


# --------------------------------------------------------------------------------------
# Digits drawn with numpy alone: anti-aliased strokes between points on a unit square.
# Not bench/digits.py's drawer: that one needs Pillow, and this environment holds only
# the serving image's TensorFlow (with numpy).

# A "1": one slightly slanted stroke, as MNIST writers draw it.
ONE = [[(0.55, 0.05), (0.45, 0.95)]]


def draw_strokes(size: int, strokes: list[list[tuple[float, float]]], width: float) -> Any:
    """Ink in [0, 1] on a size x size canvas; (x, y) points in [0, 1], y downwards."""
    import numpy as np

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    distance = np.full((size, size), np.inf)
    for stroke in strokes:
        for (x0, y0), (x1, y1) in zip(stroke, stroke[1:], strict=False):
            ax, ay, bx, by = x0 * size, y0 * size, x1 * size, y1 * size
            dx, dy = bx - ax, by - ay
            t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
            distance = np.minimum(distance, np.hypot(xs - (ax + t * dx), ys - (ay + t * dy)))
    return np.clip(width / 2 + 0.5 - distance, 0.0, 1.0)


def mnist_like_one() -> Any:
    """A float32 [28, 28, 1] "1", white on black, inside the central 20x20 box like MNIST."""
    import numpy as np

    ink = draw_strokes(20, ONE, width=2.5)
    image = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    image[4:24, 4:24] = ink
    return image[..., None]


def paper_one(size: int = 200) -> Any:
    """A uint8 [size, size, 1] "1" in dark ink on light paper, like a scan or a photo."""
    import numpy as np

    ink = draw_strokes(size, [[(0.55, 0.2), (0.47, 0.8)]], width=size / 18)
    return (235 - 215 * ink).round().astype(np.uint8)[..., None]


# --------------------------------------------------------------------------------------
# Loading and running, as TF Serving's SavedModelBundle does.


def newest_version(model_dir: Path) -> Path:
    if not model_dir.is_dir():
        raise CheckFailed(f"--model-dir {model_dir} is not a folder")
    versions = version_folders(model_dir)
    if not versions:
        raise CheckFailed(f"no integer version folder under {model_dir}")
    return versions[max(versions)]


def shape_of(tensor_info: Any) -> list[int] | None:
    if tensor_info.tensor_shape.unknown_rank:
        return None
    return [dim.size for dim in tensor_info.tensor_shape.dim]


def check_signature(
    signature_defs: Any, name: str, input_name: str, input_dtype: Any, input_shape: list[int]
) -> Any:
    import tensorflow as tf

    if name not in signature_defs:
        raise CheckFailed(f"signature {name!r} missing; the MetaGraph has {sorted(signature_defs)}")
    signature = signature_defs[name]
    if signature.method_name != PREDICT_METHOD:
        raise CheckFailed(
            f"signature {name!r} has method_name {signature.method_name!r}, not {PREDICT_METHOD!r}"
        )
    if set(signature.inputs) != {input_name}:
        raise CheckFailed(
            f"signature {name!r} inputs are {sorted(signature.inputs)}, not [{input_name!r}]"
        )
    info = signature.inputs[input_name]
    if info.dtype != input_dtype.as_datatype_enum or shape_of(info) != input_shape:
        raise CheckFailed(
            f"signature {name!r} input {input_name!r} is {tf.as_dtype(info.dtype).name} "
            f"{shape_of(info)}, not {input_dtype.name} {input_shape}"
        )
    expected = {
        OUTPUT_PROBABILITIES: (tf.float32, [-1, NUM_CLASSES]),
        OUTPUT_DIGIT: (tf.int64, [-1]),
        OUTPUT_CONFIDENCE: (tf.float32, [-1]),
        OUTPUT_REFUSAL: (tf.string, [-1]),
    }
    if set(signature.outputs) != set(expected):
        raise CheckFailed(
            f"signature {name!r} outputs are {sorted(signature.outputs)}, not {sorted(expected)}"
        )
    for key, (dtype, shape) in expected.items():
        info = signature.outputs[key]
        if info.dtype != dtype.as_datatype_enum or shape_of(info) != shape:
            raise CheckFailed(
                f"signature {name!r} output {key!r} is {tf.as_dtype(info.dtype).name} "
                f"{shape_of(info)}, not {dtype.name} {shape}"
            )
    return signature


def run_signature(
    session: Any, signature: Any, feeds: dict[str, Any], outputs: list[str] | None = None
) -> dict[str, Any]:
    """Feed by the signature's tensor names and fetch its outputs (all, or `outputs`)."""
    aliases = outputs or sorted(signature.outputs)
    fetches = [signature.outputs[alias].name for alias in aliases]
    feed_dict = {signature.inputs[alias].name: value for alias, value in feeds.items()}
    values = session.run(fetches, feed_dict=feed_dict)
    return dict(zip(aliases, values, strict=True))


def check_answer(name: str, answer: dict[str, Any], batch: int) -> Any:
    """Check one call's outputs; returns which rows were read (the others were refused)."""
    import numpy as np

    probabilities, digit, confidence, refusal = (answer[key] for key in OUTPUTS)
    for key, value, dtype, shape in (
        (OUTPUT_PROBABILITIES, probabilities, np.float32, (batch, NUM_CLASSES)),
        (OUTPUT_DIGIT, digit, np.int64, (batch,)),
        (OUTPUT_CONFIDENCE, confidence, np.float32, (batch,)),
        (OUTPUT_REFUSAL, refusal, np.object_, (batch,)),
    ):
        if value.dtype != dtype or value.shape != shape:
            raise CheckFailed(
                f"{name}: output {key!r} came back {value.dtype} {value.shape}, "
                f"not {np.dtype(dtype)} {shape}"
            )
    read = refusal == b""
    if np.any(digit[~read] != REFUSED_DIGIT) or np.any(confidence[~read] != 0):
        raise CheckFailed(f"{name}: refused rows answer digit {digit}, confidence {confidence}")
    if np.any(probabilities[~read] != 0):
        raise CheckFailed(f"{name}: refused rows have probabilities {probabilities[~read]}")
    probabilities, digit, confidence = probabilities[read], digit[read], confidence[read]
    if not np.all(np.isfinite(probabilities)) or probabilities.min(initial=0) < 0:
        raise CheckFailed(f"{name}: probabilities outside [0, 1]: {probabilities}")
    if probabilities.max(initial=0) > 1:
        raise CheckFailed(f"{name}: probabilities outside [0, 1]: {probabilities}")
    if not np.allclose(probabilities.sum(axis=-1), 1.0, atol=1e-3):
        raise CheckFailed(f"{name}: probabilities sum to {probabilities.sum(axis=-1)}, not 1")
    if not np.array_equal(digit, probabilities.argmax(axis=-1)):
        raise CheckFailed(f"{name}: digit {digit} is not the argmax of the probabilities")
    if not np.allclose(confidence, probabilities.max(axis=-1), atol=1e-6):
        raise CheckFailed(f"{name}: confidence {confidence} is not the largest probability")
    return read


def encoded_paper_one() -> tuple[bytes, bytes, bytes]:
    """The paper "1" as PNG and JPEG bytes, and a blank page as PNG (encoded eagerly,
    outside the model's graph)."""
    import tensorflow as tf

    paper = paper_one()
    blank = tf.fill(paper.shape, tf.constant(235, tf.uint8))
    return (
        tf.io.encode_png(paper).numpy(),
        tf.io.encode_jpeg(paper, quality=90).numpy(),
        tf.io.encode_png(blank).numpy(),
    )


def check_drawn_digit(
    session: Any, signature_defs: Any, encoded: tuple[bytes, bytes, bytes], expect_digit: int | None
) -> None:
    import numpy as np
    import tensorflow as tf

    images = check_signature(
        signature_defs, SIGNATURE_IMAGE, INPUT_IMAGE, tf.float32, [-1, IMAGE_SIZE, IMAGE_SIZE, 1]
    )
    bytes_signature = check_signature(
        signature_defs, SIGNATURE_IMAGE_BYTES, INPUT_IMAGE_BYTES, tf.string, [-1]
    )
    pixels_signature = check_signature(
        signature_defs, SIGNATURE_PIXELS, INPUT_PIXELS, tf.string, [-1]
    )

    batch = np.stack([mnist_like_one(), np.zeros((IMAGE_SIZE, IMAGE_SIZE, 1), np.float32)])
    answer = run_signature(session, images, {INPUT_IMAGE: batch})
    check_answer(SIGNATURE_IMAGE, answer, batch=2)
    float_digit = int(answer["digit"][0])
    print(
        f"    {SIGNATURE_IMAGE}: drawn 1 -> {float_digit} "
        f"(confidence {answer['confidence'][0]:.3f})"
    )

    answer = run_signature(
        session, bytes_signature, {INPUT_IMAGE_BYTES: np.array(list(encoded), dtype=object)}
    )
    read = check_answer(SIGNATURE_IMAGE_BYTES, answer, batch=3)
    if read.tolist() != [True, True, False] or answer[OUTPUT_REFUSAL][2] != REFUSAL_BLANK.encode():
        raise CheckFailed(
            f"{SIGNATURE_IMAGE_BYTES}: expected the drawn 1 read twice and the blank page "
            f"refused on its own row, got refusals {answer[OUTPUT_REFUSAL].tolist()}"
        )
    bytes_digits = [int(d) for d in answer["digit"][:2]]
    print(
        f"    {SIGNATURE_IMAGE_BYTES}: drawn 1 as PNG -> {bytes_digits[0]}, "
        f"as JPEG -> {bytes_digits[1]} "
        f"(confidence {answer['confidence'][0]:.3f}, {answer['confidence'][1]:.3f}); "
        "a blank page refused on its own row"
    )
    check_pixels(session, images, pixels_signature, batch)
    if expect_digit is not None and [float_digit, *bytes_digits] != [expect_digit] * 3:
        raise CheckFailed(
            f"the drawn digit was classified {float_digit} (float image), {bytes_digits[0]} (PNG), "
            f"{bytes_digits[1]} (JPEG); --expect-digit {expect_digit}"
        )


def check_pixels(session: Any, images: Any, pixels_signature: Any, batch: Any) -> None:
    """predict_pixels on `batch` as uint8 pixels answers as serving_default on the same
    (quantised) images, and refuses a string of the wrong length."""
    import numpy as np

    quantised = np.round(batch * 255).astype(np.uint8)
    pixels = np.array([image.tobytes() for image in quantised], dtype=object)
    answer = run_signature(session, pixels_signature, {INPUT_PIXELS: pixels})
    check_answer(SIGNATURE_PIXELS, answer, batch=len(pixels))
    expected = run_signature(
        session, images, {INPUT_IMAGE: quantised.astype(np.float32) / np.float32(255)}
    )
    difference = np.abs(answer["probabilities"] - expected["probabilities"]).max()
    if difference > 1e-5 or not np.array_equal(answer["digit"], expected["digit"]):
        raise CheckFailed(
            f"{SIGNATURE_PIXELS} answers differently from {SIGNATURE_IMAGE} on the same pixels "
            f"(probabilities differ by up to {difference:.2g})"
        )
    print(f"    {SIGNATURE_PIXELS}: drawn 1 as uint8 pixels -> {int(answer['digit'][0])}")
    mixed = np.array([pixels[0], bytes(IMAGE_SIZE * IMAGE_SIZE - 1)], dtype=object)
    answer = run_signature(session, pixels_signature, {INPUT_PIXELS: mixed})
    read = check_answer(SIGNATURE_PIXELS, answer, batch=2)
    refusal = answer[OUTPUT_REFUSAL][1].decode()
    if read.tolist() != [True, False] or "784 bytes" not in refusal:
        raise CheckFailed(
            f"{SIGNATURE_PIXELS}: 783 bytes beside a digit gave refusals "
            f"{answer[OUTPUT_REFUSAL].tolist()}, not a refusal naming 784 bytes on its own row"
        )
    print(f"    {SIGNATURE_PIXELS}: 783 bytes refused on its own row: {refusal}")


# --------------------------------------------------------------------------------------
# Warm-up records: TFRecord of tensorflow.serving.PredictionLog.


def parse_warmup_record(record: bytes) -> tuple[str, str, dict[str, Any], list[str]]:
    """(log type, signature name, inputs as TensorProto, output_filter) of one record."""
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    try:
        log.ParseFromString(record)
    except Exception as exc:
        raise CheckFailed(f"not a PredictionLog: {exc}") from exc
    kind = log.WhichOneof("log_type") or "none"
    if kind != "predict_log":
        return kind, "", {}, []
    request = log.predict_log.request
    return (
        kind,
        request.model_spec.signature_name,
        dict(request.inputs),
        list(request.output_filter),
    )


def read_warmup_records(version_dir: Path) -> list[bytes] | None:
    """The warm-up file's records (read eagerly, outside the model's graph), or None."""
    import tensorflow as tf

    path = version_dir / WARMUP_FILE
    if not path.exists():
        return None
    try:
        records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    except tf.errors.OpError as exc:
        raise CheckFailed(f"{path} is not a readable TFRecord file: {exc.message}") from exc
    if not records:
        # TF Serving loads such a version, just without warming it up.
        print(f"    WARNING: {path} holds no record: nothing to warm up")
    if len(records) > MAX_WARMUP_RECORDS:
        raise CheckFailed(
            f"{path} has {len(records)} records, more than TF Serving's maximum "
            f"{MAX_WARMUP_RECORDS}: it would refuse to load the version"
        )
    return records


def replay_warmup(session: Any, signature_defs: Any, records: list[bytes] | None) -> int:
    import tensorflow as tf

    if records is None:
        print(f"    no {WARMUP_FILE}: TF Serving loads without warm-up")
        return 0
    for count, record in enumerate(records, start=1):
        name = f"warm-up record {count}"
        signature_name, inputs, output_filter = record_request(name, record, signature_defs)
        where = f"{name} ({signature_name})"
        signature = signature_defs[signature_name]
        feeds = record_feeds(where, signature, inputs)
        last = list(feeds.values())[-1] if feeds else None
        batch = last.shape[0] if last is not None and last.ndim else None
        try:
            answer = run_signature(session, signature, feeds, output_filter or None)
        except tf.errors.OpError as exc:
            raise CheckFailed(f"{where} failed to run: {exc.message}") from exc
        if set(answer) == set(OUTPUTS) and batch is not None:
            check_answer(where, answer, batch)
        for alias, value in answer.items():  # with an output_filter: what was asked for
            if batch is not None and (value.ndim == 0 or value.shape[0] != batch):
                raise CheckFailed(
                    f"{where}: output {alias!r} has shape {value.shape} for a batch of {batch}"
                )
        shapes = ", ".join(
            f"{alias} {value.dtype}{list(value.shape)}" for alias, value in feeds.items()
        )
        print(f"    {name}: {signature_name}, inputs {shapes}: ok")
    return len(records)


def record_request(
    where: str, record: bytes, signature_defs: Any
) -> tuple[str, dict[str, Any], list[str]]:
    """A warm-up record's signature name, inputs and output filter, checked against the
    export's signatures as TF Serving checks them."""
    try:
        kind, signature_name, inputs, output_filter = parse_warmup_record(record)
    except CheckFailed as exc:
        raise CheckFailed(f"{where} does not parse: {exc}") from exc
    if kind != "predict_log":
        raise CheckFailed(
            f"{where} is a {kind}; only predict_log records are expected for this model"
        )
    signature_name = signature_name or SIGNATURE_IMAGE
    if signature_name not in signature_defs:
        raise CheckFailed(f'{where}: Serving signature key "{signature_name}" not found')
    signature = signature_defs[signature_name]
    if set(inputs) != set(signature.inputs):
        raise CheckFailed(
            f"{where} ({signature_name}): inputs {sorted(inputs)} do not match "
            f"the signature's {sorted(signature.inputs)}"
        )
    unknown = [alias for alias in output_filter if alias not in signature.outputs]
    if unknown or len(set(output_filter)) != len(output_filter):
        raise CheckFailed(f"{where} ({signature_name}): bad output_filter {output_filter}")
    return signature_name, inputs, output_filter


def record_feeds(where: str, signature: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """The record's input tensors, each of the dtype its signature expects."""
    import tensorflow as tf

    feeds = {}
    for alias, proto in inputs.items():
        expected = signature.inputs[alias].dtype
        if proto.dtype != expected:
            raise CheckFailed(
                f"{where}: input {alias!r} is {tf.as_dtype(proto.dtype).name}, "
                f"the signature expects {tf.as_dtype(expected).name}"
            )
        feeds[alias] = tf.make_ndarray(proto)
    return feeds


def check(version_dir: Path, expect_digit: int | None) -> None:
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # the TF1 loader's deprecation notices

    print(f"==> {version_dir} with TensorFlow {tf.__version__} (TF1 session loader, tag 'serve')")
    encoded = encoded_paper_one()
    records = read_warmup_records(version_dir)
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        try:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version_dir))
        except Exception as exc:  # any load error is the finding
            raise CheckFailed(
                f"TensorFlow {tf.__version__} cannot load {version_dir}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        signature_defs = meta_graph.signature_def
        print(f"    loaded; signatures: {', '.join(sorted(signature_defs))}")
        try:
            check_drawn_digit(session, signature_defs, encoded, expect_digit)
        except tf.errors.OpError as exc:
            raise CheckFailed(f"running a signature failed: {exc.message}") from exc
        replayed = replay_warmup(session, signature_defs, records)
    print(
        f"==> OK: loads and runs in TensorFlow {tf.__version__}; "
        f"{replayed} warm-up record(s) replayed"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m scripts.check_export_in_serving_tf",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        required=True,
        help="base path of integer versions, e.g. models/mnist",
    )
    parser.add_argument("--version", type=int, help="check this version instead of the newest")
    parser.add_argument(
        "--expect-digit",
        type=int,
        choices=range(NUM_CLASSES),
        help="also require the drawn digit (a 1) to be classified as this",
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=Path(os.environ.get("SERVING_IMAGE_VENV", DEFAULT_VENV)),
        help="the environment to run in (default %(default)s)",
    )
    parser.add_argument(
        "--no-venv", action="store_true", help="run in this interpreter, whatever its TensorFlow"
    )
    args = parser.parse_args(argv)

    if not args.no_venv and not os.environ.get(INSIDE_MARKER):
        reexec_in_venv(args.venv.resolve())  # does not return

    import tensorflow as tf

    wanted = pinned_tf_version()
    if tf.__version__ != wanted:
        message = (
            f"this runs TensorFlow {tf.__version__}, "
            f"but the serving image's is {wanted} ({REQUIREMENTS.name})"
        )
        if not args.no_venv:
            print(f"FAILED: {message}", file=sys.stderr)
            return 1
        print(f"warning: {message}", file=sys.stderr)
    try:
        version_dir = (
            args.model_dir / str(args.version) if args.version else newest_version(args.model_dir)
        )
        if not version_dir.is_dir():
            raise CheckFailed(f"no version folder {version_dir}")
        check(version_dir, args.expect_digit)
    except CheckFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
