"""The exported SavedModel honours contract 1 and is published safely."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from contract import NUM_CLASSES, REFUSAL_BLANK
from tests.conftest import train_tiny
from tests.drawings import draw_digit, encode, synthetic_mnist
from training import export
from training.versions import existing_versions, next_version

Specs = dict[str, tf.TensorSpec]
OUTPUTS = {
    "probabilities": (tf.float32, [None, NUM_CLASSES]),
    "digit": (tf.int64, [None]),
    "confidence": (tf.float32, [None]),
    "refusal": (tf.string, [None]),
}


def _signature_specs(signature: object) -> tuple[Specs, Specs]:
    _, inputs = signature.structured_input_signature  # type: ignore[attr-defined]
    return inputs, signature.structured_outputs  # type: ignore[attr-defined]


def test_export_serving_default_matches_contract(exported_model: Path) -> None:
    loaded = tf.saved_model.load(str(exported_model), tags=["serve"])
    inputs, outputs = _signature_specs(loaded.signatures["serving_default"])

    assert set(inputs) == {"image"}
    assert inputs["image"].dtype == tf.float32
    assert inputs["image"].shape.as_list() == [None, 28, 28, 1]
    assert {key: (spec.dtype, spec.shape.as_list()) for key, spec in outputs.items()} == OUTPUTS


def test_export_serving_default_classifies_digits(exported_model: Path) -> None:
    images, labels = synthetic_mnist(200, seed=7)
    loaded = tf.saved_model.load(str(exported_model))
    answer = loaded.signatures["serving_default"](
        image=tf.constant(images[..., None].astype("float32") / 255.0)
    )

    probabilities = answer["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(answer["digit"].numpy(), probabilities.argmax(axis=1))
    np.testing.assert_allclose(answer["confidence"].numpy(), probabilities.max(axis=1))
    # One epoch on 3000 synthetic digits is far from MNIST quality, but far above chance.
    assert (answer["digit"].numpy() == labels).mean() > 0.5


def test_export_image_bytes_signature_matches_contract(exported_model: Path) -> None:
    loaded = tf.saved_model.load(str(exported_model))
    inputs, outputs = _signature_specs(loaded.signatures["predict_image_bytes"])

    assert set(inputs) == {"image_bytes"}
    assert inputs["image_bytes"].dtype == tf.string
    assert inputs["image_bytes"].shape.as_list() == [None]
    assert {key: (spec.dtype, spec.shape.as_list()) for key, spec in outputs.items()} == OUTPUTS


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_export_image_bytes_reads_png_and_jpeg_drawings(exported_model: Path, fmt: str) -> None:
    # A big canvas drawing, dark ink on white, off centre: what the gateway also receives.
    uploads = [
        encode(
            draw_digit(
                digit,
                size=200,
                height_fraction=0.4,
                centre=(0.35, 0.6),
                stroke=4,
                dark_on_light=True,
            ).convert("RGB"),
            fmt,
        )
        for digit in (1, 4, 7)
    ]
    loaded = tf.saved_model.load(str(exported_model))
    answer = loaded.signatures["predict_image_bytes"](image_bytes=tf.constant(uploads))

    assert answer["probabilities"].shape == (3, NUM_CLASSES)
    assert answer["digit"].dtype == tf.int64 and answer["digit"].shape == (3,)
    assert answer["confidence"].dtype == tf.float32
    np.testing.assert_allclose(answer["probabilities"].numpy().sum(axis=1), 1.0, atol=1e-4)
    assert answer["refusal"].numpy().tolist() == [b"", b"", b""]


def test_export_image_bytes_refuses_each_image_on_its_own(exported_model: Path) -> None:
    loaded = tf.saved_model.load(str(exported_model))
    blank = encode(draw_digit(0, size=64).point(lambda _: 255))
    digit = encode(draw_digit(7, size=64))

    answer = loaded.signatures["predict_image_bytes"](image_bytes=tf.constant([digit, blank]))
    alone = loaded.signatures["predict_image_bytes"](image_bytes=tf.constant([digit]))

    assert answer["refusal"].numpy().tolist() == [b"", REFUSAL_BLANK.encode()]
    assert answer["digit"].numpy()[1] == -1 and answer["confidence"].numpy()[1] == 0.0
    assert not answer["probabilities"].numpy()[1].any()
    # The digit beside it is answered as if it were alone.
    np.testing.assert_allclose(answer["probabilities"][:1], alone["probabilities"], atol=1e-6)


def test_export_pixels_signature_matches_contract(exported_model: Path) -> None:
    loaded = tf.saved_model.load(str(exported_model))
    inputs, outputs = _signature_specs(loaded.signatures["predict_pixels"])

    assert set(inputs) == {"pixels"}
    assert inputs["pixels"].dtype == tf.string
    assert inputs["pixels"].shape.as_list() == [None]
    assert {key: (spec.dtype, spec.shape.as_list()) for key, spec in outputs.items()} == OUTPUTS


def test_export_pixels_answer_as_serving_default(exported_model: Path) -> None:
    # Digits as the gateway has them, float in [0, 1]; predict_pixels gets them as uint8.
    images, _ = synthetic_mnist(64, seed=5)
    rng = np.random.default_rng(5)
    floats = np.clip(images / 255.0 + rng.normal(0, 0.01, images.shape), 0, 1)
    floats = floats[..., None].astype(np.float32)
    quantised = np.round(floats * 255).astype(np.uint8)
    pixels = [image.tobytes() for image in quantised]
    loaded = tf.saved_model.load(str(exported_model))

    answer = loaded.signatures["predict_pixels"](pixels=tf.constant(pixels))
    same_pixels = loaded.signatures["serving_default"](
        image=tf.constant(quantised.astype(np.float32) / np.float32(255))
    )
    unquantised = loaded.signatures["serving_default"](image=tf.constant(floats))

    # The same pixels: the same answer, to float rounding.
    for key in ("probabilities", "confidence"):
        np.testing.assert_allclose(answer[key].numpy(), same_pixels[key].numpy(), atol=1e-5)
    np.testing.assert_array_equal(answer["digit"].numpy(), same_pixels["digit"].numpy())
    # The gateway's floats: no further off than half a grey level of input moves them.
    np.testing.assert_allclose(
        answer["probabilities"].numpy(), unquantised["probabilities"].numpy(), atol=0.01
    )


@pytest.mark.parametrize("length", [783, 785, 0, 28 * 28 * 4])
def test_export_pixels_refuses_strings_not_784_bytes_on_their_own_row(
    exported_model: Path, length: int
) -> None:
    loaded = tf.saved_model.load(str(exported_model))

    answer = loaded.signatures["predict_pixels"](pixels=tf.constant([bytes(784), bytes(length)]))

    refusals = answer["refusal"].numpy().tolist()
    assert refusals[0] == b""
    assert refusals[1].decode() == (
        "predict_pixels: each string of input pixels must be exactly 784 bytes (28x28 uint8 "
        f"pixels, row-major); got {length}."
    )
    assert answer["digit"].numpy().tolist()[1] == -1


def test_export_writes_model_card_and_plots(exported_model: Path, synthetic_npz: Path) -> None:
    assets = exported_model / "assets.extra"
    card = json.loads((assets / "model_card.json").read_text())

    assert card["version"] == 1
    assert card["architecture"] == "seed"
    assert card["epochs"] == 1
    assert 0.0 <= card["test_accuracy"] <= 1.0
    assert set(card["per_class_accuracy"]) == {str(digit) for digit in range(10)}
    assert card["data"]["source"] == str(synthetic_npz)
    assert len(card["data"]["sha256"]) == 64
    assert "keras" in card["library_versions"]
    assert card["created_at"].endswith("+00:00")
    calibration = card["calibration"]
    assert calibration["fitted_on"] == "holdout" and calibration["temperature"] > 0
    assert 0 <= calibration["test_ece"] <= 1 and 0 <= calibration["test_ece_before"] <= 1
    assert card["data"]["holdout_examples"] == 300
    for plot in ("confusion_matrix.png", "training_curves.png", "reliability_diagram.png"):
        assert (assets / plot).read_bytes().startswith(b"\x89PNG")


def test_export_writes_tf_serving_warmup_requests_for_every_signature(
    exported_model: Path,
) -> None:
    from tensorflow_serving.apis import prediction_log_pb2

    path = exported_model / "assets.extra" / "tf_serving_warmup_requests"
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    requests = [prediction_log_pb2.PredictionLog.FromString(r).predict_log.request for r in records]
    loaded = tf.saved_model.load(str(exported_model))

    assert [r.model_spec.signature_name for r in requests] == [
        "serving_default",
        "predict_image_bytes",
        "predict_pixels",
    ]
    image = tf.make_ndarray(requests[0].inputs["image"])
    assert image.shape == (1, 28, 28, 1)
    drawing = tf.make_ndarray(requests[1].inputs["image_bytes"])
    pixels = tf.make_ndarray(requests[2].inputs["pixels"])
    assert [len(value) for value in pixels] == [784]
    # TF Serving refuses to load a model whose warm-up request fails: all must run.
    answer = loaded.signatures["predict_image_bytes"](image_bytes=tf.constant(drawing))
    assert answer["probabilities"].shape == (1, 10)
    assert loaded.signatures["serving_default"](image=tf.constant(image))["digit"].shape == (1,)
    assert loaded.signatures["predict_pixels"](pixels=tf.constant(pixels))["digit"].shape == (1,)


def test_export_next_version_ignores_non_versions(tmp_path: Path) -> None:
    for name in ("3", "12", "tmp", ".export-abc", "0"):
        (tmp_path / name).mkdir()
    (tmp_path / "99").write_text("a file, not a version")

    assert existing_versions(tmp_path) == [3, 12]
    assert next_version(tmp_path) == 13
    assert next_version(tmp_path / "missing") == 1


def test_export_publishes_increasing_versions(synthetic_npz: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "mnist"
    (model_dir / "4").mkdir(parents=True)

    assert train_tiny(synthetic_npz, model_dir) == 0

    assert existing_versions(model_dir) == [4, 5]
    assert json.loads((model_dir / "5/assets.extra/model_card.json").read_text())["version"] == 5


def test_export_if_missing_does_nothing_when_a_version_exists(
    synthetic_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "2").mkdir()

    assert train_tiny(synthetic_npz, tmp_path, "--if-missing") == 0

    assert existing_versions(tmp_path) == [2]
    assert "nothing to train" in capsys.readouterr().out


def test_export_accuracy_gate_blocks_unless_forced(
    synthetic_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = ["--min-accuracy", "1.01"]

    assert train_tiny(synthetic_npz, tmp_path, *unreachable) == 1
    assert existing_versions(tmp_path) == []
    assert "below --min-accuracy" in capsys.readouterr().err

    assert train_tiny(synthetic_npz, tmp_path, *unreachable, "--force") == 0
    assert existing_versions(tmp_path) == [1]


def test_export_interrupted_leaves_no_half_version(
    synthetic_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(path: Path) -> None:
        assert any(path.iterdir()), "the SavedModel was being written when the crash came"
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "verify_export", crash)

    with pytest.raises(KeyboardInterrupt):
        train_tiny(synthetic_npz, tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_export_same_seed_gives_same_model(synthetic_npz: Path, tmp_path: Path) -> None:
    images, _ = synthetic_mnist(50, seed=3)
    batch = tf.constant(images[..., None].astype("float32") / 255.0)
    answers = []
    for run in ("a", "b"):
        # The default architecture: dropout and augmentation draw random numbers too.
        assert train_tiny(synthetic_npz, tmp_path / run, "--seed", "5", "--arch", "default") == 0
        loaded = tf.saved_model.load(str(tmp_path / run / "1"))
        answers.append(loaded.signatures["serving_default"](image=batch)["probabilities"].numpy())

    np.testing.assert_array_equal(answers[0], answers[1])
