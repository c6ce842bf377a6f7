"""Export a trained model with contract 1's signatures and publish it atomically.

A version appears under the base path only complete: it is written to a hidden temporary
folder beside it, loaded back and checked, then renamed into place, so a polling server
never sees half a model.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from contract import (
    ASSETS_EXTRA_DIR,
    IMAGE_SIZE,
    INPUT_IMAGE,
    INPUT_IMAGE_BYTES,
    INPUT_PIXELS,
    MODEL_NAME,
    OUTPUT_CONFIDENCE,
    OUTPUT_DIGIT,
    OUTPUT_PROBABILITIES,
    OUTPUT_REFUSAL,
    REFUSED_DIGIT,
    SIGNATURE_IMAGE,
    SIGNATURE_IMAGE_BYTES,
    SIGNATURE_PIXELS,
    model_card_path,
)
from training.graph_preprocessing import normalise_encoded_images
from training.signature_check import SEVEN, check_signatures, drawn_page
from training.versions import next_version

TEMP_PREFIX = ".export-"
WARMUP_FILE = "tf_serving_warmup_requests"
PIXEL_BYTES = IMAGE_SIZE * IMAGE_SIZE  # one digit as predict_pixels takes it: uint8, row-major


def _outputs(
    probabilities: tf.Tensor, temperature: float, refusal: tf.Tensor | None = None
) -> dict[str, tf.Tensor]:
    """Contract 1's outputs. A row with a refusal answers digit -1 and zero confidence and
    probabilities, next to the rows that were read: one refused image never fails a batch
    (TF Serving fails every request of a batch whose run fails)."""
    # softmax(log p / T) is softmax(logits / T): the temperature fitted on held-out digits,
    # folded in so every caller (TF Serving's REST and gRPC APIs alike) gets calibrated
    # probabilities.
    if temperature != 1.0:
        probabilities = tf.nn.softmax(tf.math.log(tf.maximum(probabilities, 1e-30)) / temperature)
    if refusal is None:
        refusal = tf.fill(tf.shape(probabilities)[:1], "")
    refused = tf.not_equal(refusal, "")
    probabilities = tf.where(refused[:, None], 0.0, probabilities)
    digit = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
    return {
        OUTPUT_PROBABILITIES: probabilities,
        OUTPUT_DIGIT: tf.where(refused, tf.constant(REFUSED_DIGIT, tf.int64), digit),
        OUTPUT_CONFIDENCE: tf.reduce_max(probabilities, axis=-1),
        OUTPUT_REFUSAL: refusal,
    }


def decode_pixels(pixels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Strings of 784 raw uint8 pixels (an MNIST-normalised digit, row-major, white on
    black) as float32 [-1, 28, 28, 1] images in [0, 1], the input of serving_default, and
    their refusals: a string of any other length is refused on its own row."""
    lengths = tf.strings.length(pixels)
    refusal = tf.where(
        tf.equal(lengths, PIXEL_BYTES),
        "",
        tf.strings.join(
            [
                f"{SIGNATURE_PIXELS}: each string of input {INPUT_PIXELS} must be exactly "
                f"{PIXEL_BYTES} bytes ({IMAGE_SIZE}x{IMAGE_SIZE} uint8 pixels, row-major); got ",
                tf.strings.as_string(lengths),
                ".",
            ]
        ),
    )
    # fixed_length pads short strings with zeros and cuts long ones: every row decodes.
    raw = tf.io.decode_raw(pixels, tf.uint8, fixed_length=PIXEL_BYTES)
    images = tf.reshape(raw, [-1, IMAGE_SIZE, IMAGE_SIZE, 1])
    return tf.cast(images, tf.float32) / 255.0, refusal


def build_archive(model: keras.Model, temperature: float = 1.0) -> keras.export.ExportArchive:
    """The SavedModel archive with contract 1's signatures and predict_pixels."""
    archive = keras.export.ExportArchive()
    archive.track(model)

    def endpoint(
        decode: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor | None]],
    ) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
        def classify(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            images, refusal = decode(inputs)
            return _outputs(model(images, training=False), temperature, refusal)

        return classify

    image_spec = tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32, name=INPUT_IMAGE)
    for name, spec, decode in (
        (SIGNATURE_IMAGE, image_spec, lambda image: (image, None)),
        (
            SIGNATURE_IMAGE_BYTES,
            tf.TensorSpec([None], tf.string, name=INPUT_IMAGE_BYTES),
            normalise_encoded_images,
        ),
        (SIGNATURE_PIXELS, tf.TensorSpec([None], tf.string, name=INPUT_PIXELS), decode_pixels),
    ):
        archive.add_endpoint(name, endpoint(decode), input_signature=[spec])
    return archive


def verify_export(path: Path) -> None:
    """Load the SavedModel back and check its signatures' answers (signature_check.py).

    Raises:
        ValueError: a signature is missing or answers otherwise than contract 1 says.
    """
    signatures = tf.saved_model.load(str(path)).signatures

    def run(name: str, input_name: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        if name not in signatures:
            raise ValueError(f"export at {path} lacks signature {name!r}")
        answer = signatures[name](**{input_name: tf.constant(batch)})
        return {key: value.numpy() for key, value in answer.items()}

    check_signatures(run, png, jpeg)


def png(page: np.ndarray) -> bytes:
    return bytes(tf.io.encode_png(page).numpy())


def jpeg(page: np.ndarray) -> bytes:
    return bytes(tf.io.encode_jpeg(page, quality=90).numpy())


def write_warmup_requests(path: Path) -> None:
    """TF Serving replays these at load (--enable_model_warmup), so the first user
    request of any signature does not pay for graph initialisation."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    drawing = png(drawn_page(SEVEN, 96))  # what a canvas sends, for in-graph decoding
    examples = {
        (SIGNATURE_IMAGE, INPUT_IMAGE): np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), np.float32),
        (SIGNATURE_IMAGE_BYTES, INPUT_IMAGE_BYTES): np.array([drawing], dtype=object),
        (SIGNATURE_PIXELS, INPUT_PIXELS): np.array([bytes(PIXEL_BYTES)], dtype=object),
    }
    with tf.io.TFRecordWriter(str(path)) as writer:
        for (signature, input_name), value in examples.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=MODEL_NAME, signature_name=signature)
            )
            request.inputs[input_name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def publish(
    model: keras.Model,
    base: Path,
    model_card: Mapping[str, object],
    extra_files: Mapping[str, bytes] | None = None,
    temperature: float = 1.0,
) -> Path:
    """Export `model` as the next version under `base` and return the version's path.

    `model_card` (with "version" filled in) and `extra_files` land in assets.extra/;
    `temperature` divides the model's logits in every signature.
    """
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=base))
    try:
        build_archive(model, temperature).write_out(str(staging), verbose=False)
        verify_export(staging)
        version = next_version(base)
        assets = staging / ASSETS_EXTRA_DIR
        assets.mkdir(exist_ok=True)
        card = {**model_card, "version": version}
        model_card_path(staging).write_text(json.dumps(card, indent=2) + "\n")
        write_warmup_requests(assets / WARMUP_FILE)
        for name, content in (extra_files or {}).items():
            (assets / name).write_bytes(content)
        staging.chmod(0o755)  # mkdtemp makes it private; servers run as other users
        target = base / str(version)
        # rename() is atomic within one file system; it fails rather than merge if a
        # concurrent trainer took the same number.
        os.rename(staging, target)
        return target
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
