"""Conformance with TF Serving's REST API: paths, bodies, status codes and the exact error
messages of tensorflow_serving/model_servers/http_rest_api_handler.cc and util/json_tensor.cc.

Values quoted in messages are the request's JSON. The edge cases (NaN, letter case, query
strings, methods, float output, labels) are in test_conformance_edges.py."""

import base64
import concurrent.futures

import numpy as np
import pytest
from starlette.testclient import TestClient

from contract import REFUSAL_BLANK
from tests.drawings import draw_digit, encode, synthetic_mnist

ZEROS = np.zeros((28, 28, 1)).tolist()
PREDICT = "/v1/models/mnist:predict"


def available(version: str) -> dict[str, object]:
    return {
        "model_version_status": [
            {
                "version": version,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def test_status_of_model_and_version(server: TestClient) -> None:
    for path in (
        "/v1/models/mnist",
        "/v1/models/mnist/versions/1",
        "/v1/models/mnist/labels/stable",
    ):
        response = server.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/json"
        assert response.json() == available("1")


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        pytest.param(
            "/v1/models/nope", 404, "Could not find any versions of model nope", id="unknown-model"
        ),
        pytest.param(
            "/v1/models/mnist/versions/7",
            404,
            "Could not find version 7 of model mnist",
            id="unknown-version",
        ),
        pytest.param("/v1/models", 400, "Missing model name in request.", id="no-model-name"),
        pytest.param(
            "/v1/models/mnist/labels/canary/metadata",
            400,
            "Unrecognized servable version label: canary",
            id="unknown-label-metadata",
        ),
        pytest.param(
            "/v1/models/mnist/metadata/extra",
            400,
            "Malformed request: GET /v1/models/mnist/metadata/extra",
            id="malformed",
        ),
    ],
)
def test_status_errors(server: TestClient, path: str, status: int, error: str) -> None:
    response = server.get(path)

    assert response.status_code == status
    assert response.json() == {"error": error}


def test_paths_are_case_insensitive_like_tf_serving(server: TestClient) -> None:
    assert server.get("/V1/Models/mnist").status_code == 200


def test_metadata_has_signature_defs_in_tf_serving_shape(server: TestClient) -> None:
    response = server.get("/v1/models/mnist/versions/1/metadata")

    assert response.status_code == 200
    body = response.json()
    assert body["model_spec"] == {"name": "mnist", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    image = default["inputs"]["image"]
    assert image["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in image["tensor_shape"]["dim"]] == ["-1", "28", "28", "1"]
    assert {k: v["dtype"] for k, v in default["outputs"].items()} == {
        "probabilities": "DT_FLOAT",
        "digit": "DT_INT64",
        "confidence": "DT_FLOAT",
        "refusal": "DT_STRING",
    }
    assert signatures["predict_image_bytes"]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    pixels = signatures["predict_pixels"]["inputs"]["pixels"]
    assert pixels["dtype"] == "DT_STRING"
    assert [d["size"] for d in pixels["tensor_shape"]["dim"]] == ["-1"]
    assert set(signatures["predict_pixels"]["outputs"]) == set(default["outputs"])


def test_predict_row_format(server: TestClient) -> None:
    response = server.post(PREDICT, json={"instances": [ZEROS, ZEROS]})

    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 2
    assert set(predictions[0]) == {"probabilities", "digit", "confidence", "refusal"}
    assert len(predictions[0]["probabilities"]) == 10
    assert predictions[0]["digit"] == int(np.argmax(predictions[0]["probabilities"]))
    assert predictions[0]["confidence"] == pytest.approx(max(predictions[0]["probabilities"]))


def test_predict_columnar_format(server: TestClient) -> None:
    response = server.post(PREDICT, json={"inputs": [ZEROS]})

    assert response.status_code == 200
    outputs = response.json()["outputs"]
    assert set(outputs) == {"probabilities", "digit", "confidence", "refusal"}
    assert np.asarray(outputs["probabilities"]).shape == (1, 10)
    assert np.asarray(outputs["digit"]).shape == (1,)


def test_predict_columnar_named_inputs(server: TestClient) -> None:
    response = server.post(PREDICT, json={"inputs": {"image": [ZEROS]}})

    assert response.status_code == 200


def test_predict_versions_and_labels_route(server: TestClient) -> None:
    for path in (
        "/v1/models/mnist/versions/1:predict",
        "/v1/models/mnist/labels/stable:predict",
    ):
        assert server.post(path, json={"instances": [ZEROS]}).status_code == 200, path


def test_predict_image_bytes_with_b64(server: TestClient) -> None:
    png = encode(draw_digit(3, size=90, stroke=2, dark_on_light=True))
    body = {
        "signature_name": "predict_image_bytes",
        "instances": [{"b64": base64.b64encode(png).decode()}],
    }

    response = server.post(PREDICT, json=body)

    assert response.status_code == 200
    (prediction,) = response.json()["predictions"]
    assert 0 <= prediction["digit"] <= 9


def test_predict_image_bytes_refuses_a_blank_image_on_its_own_row(server: TestClient) -> None:
    blank = encode(draw_digit(0, size=40).point(lambda _: 255))
    digit = encode(draw_digit(3, size=90, stroke=2, dark_on_light=True))
    body = {
        "signature_name": "predict_image_bytes",
        "instances": [{"b64": base64.b64encode(image).decode()} for image in (digit, blank)],
    }

    response = server.post(PREDICT, json=body)

    assert response.status_code == 200
    read, refused = response.json()["predictions"]
    assert read["refusal"] == "" and 0 <= read["digit"] <= 9
    assert refused == {
        "refusal": REFUSAL_BLANK,
        "digit": -1,
        "confidence": 0.0,
        "probabilities": [0.0] * 10,
    }


def pixels_b64(images: np.ndarray) -> list[dict[str, str]]:
    """Digits as predict_pixels takes them over REST: 784 uint8 bytes each, base64."""
    return [{"b64": base64.b64encode(image.tobytes()).decode()} for image in images]


@pytest.mark.parametrize("layout", ["row", "columnar", "columnar-named"])
def test_predict_pixels_answers_as_serving_default(server: TestClient, layout: str) -> None:
    images, _ = synthetic_mnist(5, seed=11)  # uint8 [5, 28, 28], white on black
    pixels = pixels_b64(images)
    body: dict[str, object] = {"signature_name": "predict_pixels"}
    if layout == "row":
        body["instances"] = pixels
    else:
        body["inputs"] = pixels if layout == "columnar" else {"pixels": pixels}
    # The same digits as serving_default's floats: uint8 / 255, in float32 as the graph does.
    floats = images[..., None].astype(np.float32) / np.float32(255)

    response = server.post(PREDICT, json=body)
    expected = server.post(PREDICT, json={"inputs": floats.tolist()}).json()["outputs"]

    assert response.status_code == 200
    if layout == "row":
        rows = response.json()["predictions"]
        answer = {
            key: [row[key] for row in rows] for key in ("probabilities", "digit", "confidence")
        }
    else:
        answer = response.json()["outputs"]
    np.testing.assert_allclose(answer["probabilities"], expected["probabilities"], atol=1e-5)
    np.testing.assert_allclose(answer["confidence"], expected["confidence"], atol=1e-5)
    assert answer["digit"] == expected["digit"]


@pytest.mark.parametrize("length", [0, 783, 785, 28 * 28 * 3])
def test_predict_pixels_refuses_strings_not_784_bytes(server: TestClient, length: int) -> None:
    body = {
        "signature_name": "predict_pixels",
        "instances": [{"b64": base64.b64encode(bytes(length)).decode()}],
    }

    response = server.post(PREDICT, json=body)

    assert response.status_code == 200
    (refused,) = response.json()["predictions"]
    assert refused["digit"] == -1
    assert refused["refusal"].endswith(
        f"must be exactly 784 bytes (28x28 uint8 pixels, row-major); got {length}."
    )


def test_predict_pixels_refusal_spares_the_requests_batched_with_it(server: TestClient) -> None:
    """TF Serving fails every request of a batch whose model run fails: a bad row must be
    answered with its refusal, not an error, or it would fail the requests beside it."""
    good = {
        "signature_name": "predict_pixels",
        "instances": pixels_b64(np.zeros((1, 28, 28), np.uint8)),
    }
    bad = {
        "signature_name": "predict_pixels",
        "instances": [{"b64": base64.b64encode(b"x").decode()}],
    }

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda body: server.post(PREDICT, json=body), [good, bad] * 8))

    assert [answer.status_code for answer in answers] == [200] * 16
    digits = [answer.json()["predictions"][0]["digit"] for answer in answers]
    assert [digit >= 0 for digit in digits] == [True, False] * 8


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        pytest.param(
            "/v1/models/nope:predict",
            b'{"instances": [1]}',
            404,
            "Servable not found for request: Latest(nope)",
            id="unknown-model",
        ),
        pytest.param(
            "/v1/models/mnist/versions/9:predict",
            b'{"instances": [1]}',
            404,
            "Servable not found for request: Specific(mnist, 9)",
            id="unknown-version",
        ),
        pytest.param(
            "/v1/models/mnist/labels/canary:predict",
            b'{"instances": [1]}',
            400,
            "Unrecognized servable version label: canary",
            id="unknown-label",
        ),
        pytest.param(
            "/v1/models/mnist/versions/abc:predict",
            b"{}",
            400,
            "Malformed request: POST /v1/models/mnist/versions/abc:predict",
            id="bad-version",
        ),
        pytest.param(PREDICT, b"", 400, "JSON Parse error: The document is empty", id="empty-body"),
        pytest.param(PREDICT, b"[1,2]", 400, "JSON Value: [1, 2] Is not object", id="not-object"),
        pytest.param(
            PREDICT, b'{"foo": 1}', 400, "Missing 'inputs' or 'instances' key", id="no-inputs"
        ),
        pytest.param(
            PREDICT,
            b'{"instances": 1}',
            400,
            "JSON Value: {\"instances\": 1} Expecting 'instances' to be an list/array",
            id="instances-not-list",
        ),
        pytest.param(
            PREDICT,
            b'{"instances": []}',
            400,
            "JSON Value: {\"instances\": []} No values in 'instances' array",
            id="instances-empty",
        ),
        pytest.param(
            PREDICT,
            b'{"instances": [1], "inputs": [1]}',
            400,
            'JSON Value: {"instances": [1], "inputs": [1]} Not formatted correctly '
            "expecting only one of 'inputs' or 'instances' keys to exist ",
            id="both-formats",
        ),
        pytest.param(
            PREDICT,
            b'{"signature_name": 5, "instances": [1]}',
            400,
            'JSON Value: {"signature_name": 5, "instances": [1]} not formatted '
            "correctly. 'signature_name' key must be a string value.",
            id="signature-not-string",
        ),
        pytest.param(
            PREDICT,
            b'{"signature_name": "nope", "instances": [1]}',
            400,
            'Serving signature name: "nope" not found in signature def',
            id="unknown-signature",
        ),
        pytest.param(
            PREDICT,
            b'{"instances": ["a"]}',
            400,
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
            'JSON Value: "a" Type: String is not of expected type: float',
            id="string-for-float",
        ),
        pytest.param(
            PREDICT,
            b'{"instances": [[1, 2], [1]]}',
            400,
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Expecting tensor size: 2 but got: 1",
            id="ragged-instances",
        ),
        pytest.param(
            PREDICT,
            b'{"instances": [[[1], [2, 3]]]}',
            400,
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Encountered list at unexpected size: 2 at level: 1 expected size: 1",
            id="ragged-inner",
        ),
        pytest.param(
            PREDICT,
            b'{"inputs": {"other": [1]}}',
            400,
            "Missing named input: image in 'inputs' object.",
            id="missing-named-input",
        ),
        pytest.param(
            PREDICT,
            b'{"signature_name": "predict_image_bytes", "instances": [{"b64": "%%%"}]}',
            400,
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Unable to base64 decode",
            id="bad-base64",
        ),
    ],
)
def test_predict_errors_match_tf_serving(
    server: TestClient, path: str, body: bytes, status: int, error: str
) -> None:
    response = server.post(path, content=body)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": error}


def test_predict_malformed_json_is_parse_error(server: TestClient) -> None:
    response = server.post(PREDICT, content=b'{"instances": [')

    assert response.status_code == 400
    assert response.json()["error"].startswith("JSON Parse error: ")


def test_predict_wrong_shape_is_400(server: TestClient) -> None:
    response = server.post(PREDICT, json={"instances": [np.zeros((28, 28)).tolist()]})

    assert response.status_code == 400
    assert "shape" in response.json()["error"]


def test_prometheus_metrics_at_tf_serving_path(server: TestClient) -> None:
    server.post(PREDICT, json={"instances": [ZEROS]})

    response = server.get("/monitoring/prometheus/metrics")

    assert response.status_code == 200
    assert (
        ':tensorflow:serving:request_count_total{model_name="mnist",status="OK"} 1.0'
        in response.text
    )
