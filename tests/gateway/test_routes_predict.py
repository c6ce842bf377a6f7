"""POST /predict and /predict/batch (gateway/routes/predict.py) through the app, against a
fake TF Serving: answers, pins, uploads refused, and upstream failures as the caller sees
them."""

from collections.abc import Callable

import aiohttp
import httpx
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from contract import SIGNATURE_PIXELS
from tests.drawings import draw_digit, encode
from tests.gateway.conftest import FakeTFServing
from tests.gateway.helpers import PNG, upload


def test_predict_answers_digit_confidence_probabilities_version(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.versions = {1: "END", 3: "AVAILABLE"}

    response = client.post("/predict", files=upload())

    assert response.status_code == 200
    body = response.json()
    assert body["predicted_digit"] == 5
    assert body["confidence"] == pytest.approx(0.91)
    assert len(body["probabilities"]) == 10
    assert body["model_version"] == "3"
    assert body["normalized_image"] is None


def test_predict_sends_normalised_28x28_pixels_to_the_resolved_version_path(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    client.post("/predict", files=upload(), headers={"X-Request-ID": "abc-123"})

    (call,) = fake_tf_serving.predict_requests
    assert call.url.path == "/v1/models/mnist/versions/1:predict"
    assert call.headers["X-Request-ID"] == "abc-123"
    body = orjson.loads(call.content)
    assert body["signature_name"] == SIGNATURE_PIXELS
    assert len(body["instances"][0]["b64"]) == 1048  # 784 bytes, base64: not 784 JSON floats
    instances = fake_tf_serving.images(body, 1)
    assert isinstance(instances, np.ndarray) and instances.shape == (1, 28, 28, 1)
    assert instances.min() >= 0 and instances.max() == pytest.approx(1.0, abs=0.05)
    assert instances[0, 0, :, 0].max() == 0  # black border, as MNIST


def test_predict_sends_json_floats_to_a_version_without_the_pixel_signature(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.versions = {1: "AVAILABLE", 2: "AVAILABLE"}
    fake_tf_serving.without_pixels = {2}

    newest = client.post("/predict", files=upload())
    pinned = client.post("/predict?version=1", files=upload())

    assert newest.status_code == pinned.status_code == 200
    assert newest.json()["model_version"] == "2" and pinned.json()["model_version"] == "1"
    to_two, to_one = (orjson.loads(call.content) for call in fake_tf_serving.predict_requests)
    assert "signature_name" not in to_two
    assert np.asarray(to_two["instances"]).shape == (1, 28, 28, 1)
    assert to_one["signature_name"] == SIGNATURE_PIXELS


def test_predict_includes_normalised_image_on_request(client: TestClient) -> None:
    response = client.post("/predict?include_image=true", files=upload())

    assert response.status_code == 200
    assert response.json()["normalized_image"].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    ("query", "headers", "path"),
    [
        pytest.param("?version=2", {}, "/v1/models/mnist/versions/2:predict", id="query-version"),
        pytest.param(
            "", {"X-Model-Version": "2"}, "/v1/models/mnist/versions/2:predict", id="header-version"
        ),
        pytest.param("?label=canary", {}, "/v1/models/mnist/versions/2:predict", id="query-label"),
    ],
)
def test_predict_pins_version_or_label(
    client: TestClient,
    fake_tf_serving: FakeTFServing,
    query: str,
    headers: dict[str, str],
    path: str,
) -> None:
    fake_tf_serving.versions = {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE"}
    fake_tf_serving.labels = {"canary": 2}

    response = client.post(f"/predict{query}", files=upload(), headers=headers)

    assert response.status_code == 200
    assert response.json()["model_version"] == "2"
    assert fake_tf_serving.predict_requests[-1].url.path == path


def test_predict_unknown_pinned_version_is_422(client: TestClient) -> None:
    response = client.post("/predict?version=9", files=upload())

    assert response.status_code == 422
    assert "Model version 9 is not available" in response.json()["detail"]


def test_predict_version_and_label_together_is_422(client: TestClient) -> None:
    response = client.post("/predict?version=1&label=stable", files=upload())

    assert response.status_code == 422
    assert response.json() == {"detail": "Pin a model version or a label, not both."}


def test_predict_label_header_cannot_reach_other_upstream_paths(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    response = client.post("/predict", files=upload(), headers={"X-Model-Label": "../../x"})

    assert response.status_code == 422
    assert fake_tf_serving.requests == []


def test_predict_configured_pin_is_used(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.versions = {1: "AVAILABLE", 2: "AVAILABLE"}
    client = make_client(model_version=1)

    response = client.post("/predict", files=upload())

    assert response.json()["model_version"] == "1"


def test_predict_retries_once_when_version_was_swapped_out(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.versions = {1: "AVAILABLE"}
    client.post("/predict", files=upload())
    original = fake_tf_serving.predictions

    def swap_then_answer(request: httpx.Request, version: int) -> httpx.Response:
        fake_tf_serving.versions = {1: "END", 2: "AVAILABLE"}
        return original(request, version)

    fake_tf_serving.predictions = swap_then_answer  # type: ignore[method-assign]

    response = client.post("/predict", files=upload())

    assert response.status_code == 200
    assert response.json()["model_version"] == "2"


@pytest.mark.parametrize(
    ("data", "status", "phrase"),
    [
        pytest.param(b"", 400, "empty", id="empty"),
        pytest.param(b"just some text", 400, "not a readable image", id="text"),
        pytest.param(PNG[:200], 400, "truncated", id="truncated"),
        pytest.param(b"%PDF-1.4 ...", 415, "PDF", id="pdf"),
        pytest.param(
            encode(draw_digit(0, size=64).point(lambda _: 255)), 422, "No digit found", id="blank"
        ),
    ],
)
def test_predict_bad_uploads_get_clear_4xx(
    client: TestClient, fake_tf_serving: FakeTFServing, data: bytes, status: int, phrase: str
) -> None:
    response = client.post("/predict", files=upload(data))

    assert response.status_code == status
    assert phrase in response.json()["detail"]
    assert fake_tf_serving.predict_requests == []


def test_predict_without_file_field_is_422_with_a_sentence(client: TestClient) -> None:
    response = client.post("/predict", files={"image": ("x.png", PNG, "image/png")})

    assert response.status_code == 422
    assert "multipart/form-data" in response.json()["detail"]


def test_predict_too_many_pixels_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_image_pixels=100 * 100)

    response = client.post("/predict", files=upload(encode(draw_digit(4, size=101))))

    assert response.status_code == 413
    assert "more than 10000 pixels" in response.json()["detail"]


@pytest.mark.parametrize(
    ("failure", "status", "phrase"),
    [
        pytest.param(
            aiohttp.ClientConnectionError("refused"), 503, "unreachable", id="connection-refused"
        ),
        pytest.param(TimeoutError("slow"), 504, "did not answer in time", id="timeout"),
        pytest.param(
            aiohttp.ConnectionTimeoutError("slow connect"), 503, "unreachable", id="connect-timeout"
        ),
        pytest.param(aiohttp.ServerDisconnectedError(), 503, "unreachable", id="dropped"),
    ],
)
def test_predict_transport_failures_map_to_503_504(
    client: TestClient, fake_tf_serving: FakeTFServing, failure: Exception, status: int, phrase: str
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure

    fake_tf_serving.failure = fail

    response = client.post("/predict", files=upload())

    assert response.status_code == status
    assert phrase in response.json()["detail"]


@pytest.mark.parametrize(
    ("upstream_status", "status"),
    [
        pytest.param(400, 502, id="upstream-invalid-argument"),
        pytest.param(500, 502, id="upstream-internal"),
        pytest.param(503, 503, id="upstream-unavailable"),
    ],
)
def test_predict_upstream_error_statuses(
    client: TestClient, fake_tf_serving: FakeTFServing, upstream_status: int, status: int
) -> None:
    client.post("/predict", files=upload())  # learn the version first
    fake_tf_serving.failure = lambda request: httpx.Response(
        upstream_status, json={"error": "boom"}
    )

    response = client.post("/predict", files=upload())

    assert response.status_code == status
    assert "boom" in response.json()["detail"]


def test_predict_upstream_non_json_answer_is_502(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.failure = lambda request: httpx.Response(200, content=b"<html>proxy</html>")

    response = client.post("/predict", files=upload())

    assert response.status_code == 502


def test_predict_model_not_available_is_503(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.versions = {1: "LOADING"}

    response = client.post("/predict", files=upload())

    assert response.status_code == 503
    assert "no available version" in response.json()["detail"]


def test_batch_classifies_files_in_one_upstream_call(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    files = [("files", (f"{d}.png", encode(draw_digit(d, size=64)), "image/png")) for d in range(4)]

    response = client.post("/predict/batch", files=files)

    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "1"
    assert [p["filename"] for p in body["predictions"]] == ["0.png", "1.png", "2.png", "3.png"]
    assert all(p["predicted_digit"] == 5 for p in body["predictions"])
    (call,) = fake_tf_serving.predict_requests
    images = fake_tf_serving.images(orjson.loads(call.content), 1)
    assert isinstance(images, np.ndarray) and images.shape == (4, 28, 28, 1)


def test_batch_answers_the_good_files_and_gives_each_bad_file_its_error(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    files = [
        ("files", ("good.png", PNG, "image/png")),
        ("files", ("blank.png", encode(draw_digit(0, size=40).point(lambda _: 0)), "image/png")),
        ("files", ("notes.pdf", b"%PDF-1.7 not an image", "application/pdf")),
        ("files", ("also-good.png", PNG, "image/png")),
    ]

    response = client.post("/predict/batch", files=files)

    assert response.status_code == 200
    good, blank, pdf, also_good = response.json()["predictions"]
    assert (good["filename"], good["predicted_digit"]) == ("good.png", 5)
    assert (also_good["filename"], also_good["predicted_digit"]) == ("also-good.png", 5)
    assert blank["filename"] == "blank.png" and blank["error"]["status"] == 422
    assert blank["error"]["detail"].startswith("No digit found")
    assert pdf == {
        "filename": "notes.pdf",
        "error": {"status": 415, "detail": pdf["error"]["detail"]},
    }
    assert "PDF" in pdf["error"]["detail"]
    # One upstream call, for the two files that could be read.
    (call,) = fake_tf_serving.predict_requests
    images = fake_tf_serving.images(orjson.loads(call.content), 1)
    assert isinstance(images, np.ndarray) and images.shape == (2, 28, 28, 1)


def test_batch_of_only_unreadable_files_asks_the_model_nothing(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    files = [("files", ("empty.png", b"", "image/png"))]

    response = client.post("/predict/batch", files=files)

    assert response.status_code == 200
    (entry,) = response.json()["predictions"]
    assert entry["filename"] == "empty.png" and entry["error"]["status"] == 400
    assert entry["error"]["detail"].startswith("The uploaded file is empty")
    assert response.json()["model_version"] is None
    assert fake_tf_serving.predict_requests == []


def test_batch_over_the_limit_is_refused_before_work(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    client = make_client(max_batch=2)
    files = [("files", (f"{i}.png", PNG, "image/png")) for i in range(3)]

    response = client.post("/predict/batch", files=files)

    assert response.status_code == 422
    assert "more than the 2 allowed" in response.json()["detail"]
    assert fake_tf_serving.predict_requests == []


def test_predict_header_label_pins_the_labelled_version(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.versions = {1: "AVAILABLE", 2: "AVAILABLE"}
    fake_tf_serving.labels = {"stable": 1}

    response = client.post("/predict", files=upload(), headers={"X-Model-Label": "stable"})

    assert response.status_code == 200
    assert response.json()["model_version"] == "1"
    assert fake_tf_serving.predict_requests[-1].url.path == "/v1/models/mnist/versions/1:predict"


def test_predict_unset_pinned_label_is_503(client: TestClient) -> None:
    response = client.post("/predict?label=nightly", files=upload())

    assert response.status_code == 503
    assert "The label 'nightly'" in response.json()["detail"]


@pytest.mark.parametrize("value", ["maybe", "2", ""])
def test_predict_include_image_must_be_a_boolean(
    client: TestClient, fake_tf_serving: FakeTFServing, value: str
) -> None:
    response = client.post(f"/predict?include_image={value}", files=upload())

    assert response.status_code == 422
    assert "include_image must be true or false" in response.json()["detail"]
    assert fake_tf_serving.requests == []


def test_predict_body_that_is_not_multipart_is_422(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    response = client.post("/predict", json={"file": "aGVsbG8="})

    assert response.status_code == 422
    assert "not multipart/form-data" in response.json()["detail"]
    assert fake_tf_serving.requests == []


def test_predict_broken_multipart_is_400(client: TestClient) -> None:
    response = client.post(
        "/predict",
        content=b'--x\r\nContent-Disposition: form-data; name="file"\r\n\r\nno end',
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )

    assert response.status_code == 400
    assert "not valid multipart/form-data" in response.json()["detail"]


def test_predict_malformed_prediction_is_502(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    client.post("/predict", files=upload())  # learn the version first
    fake_tf_serving.failure = lambda request: httpx.Response(
        200, json={"predictions": [{"digit": 5}]}
    )

    response = client.post("/predict", files=upload())

    assert response.status_code == 502
    assert "expected shape" in response.json()["detail"]


def test_batch_without_files_field_is_422(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    response = client.post("/predict/batch", files=upload())

    assert response.status_code == 422
    assert "files: Field required" in response.json()["detail"]
    assert fake_tf_serving.requests == []


def test_batch_includes_each_normalised_image_on_request(client: TestClient) -> None:
    files = [("files", (f"{i}.png", PNG, "image/png")) for i in range(2)]

    response = client.post("/predict/batch?include_image=yes", files=files)

    assert response.status_code == 200
    images = [p["normalized_image"] for p in response.json()["predictions"]]
    assert len(images) == 2
    assert all(image.startswith("data:image/png;base64,") for image in images)


def test_batch_pinned_version_answers_from_it(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.versions = {1: "AVAILABLE", 2: "AVAILABLE"}
    files = [("files", ("a.png", PNG, "image/png"))]

    response = client.post("/predict/batch", files=files, headers={"X-Model-Version": "1"})

    assert response.status_code == 200
    assert response.json()["model_version"] == "1"
    assert fake_tf_serving.predict_requests[-1].url.path == "/v1/models/mnist/versions/1:predict"
