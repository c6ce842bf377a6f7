"""scripts/check_export_in_serving_tf.py on a real export, in this environment's TensorFlow
(--any-tensorflow: CI checks the trained model in the image's, `make check-export`). It must
pass on what training exports, whatever warm-up records that holds."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = "scripts.check_export_in_serving_tf"

pytestmark = pytest.mark.slow


def run_check(model_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", MODULE, "--model-dir", str(model_dir), "--any-tensorflow", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def test_the_exported_model_passes(exported_model: Path) -> None:
    result = run_check(exported_model.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "==> OK: loads and runs; 3 warm-up record(s) replayed" in result.stdout


def test_a_bad_warmup_record_fails_loudly(exported_model: Path, tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    apis = pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2")
    from tensorflow_serving.apis import model_pb2, predict_pb2

    version = tmp_path / "mnist" / "7"
    shutil.copytree(exported_model, version)
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name="mnist", signature_name="serving_default")
    )
    # float64 where the signature takes float32: TF Serving's warm-up, hence the load, fails.
    request.inputs["image"].CopyFrom(tf.make_tensor_proto([[[[0.0]] * 28] * 28], tf.float64))
    log = apis.PredictionLog(predict_log=apis.PredictLog(request=request))
    with tf.io.TFRecordWriter(str(version / "assets.extra/tf_serving_warmup_requests")) as out:
        out.write(log.SerializeToString())

    result = run_check(tmp_path / "mnist")
    assert result.returncode == 1
    assert "warm-up record 1 (serving_default): input 'image' is float64" in result.stderr
