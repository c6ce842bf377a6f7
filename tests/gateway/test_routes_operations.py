"""GET /, /healthz, /readyz and /metrics (gateway/routes/operations.py) against a fake TF
Serving."""

from collections.abc import Callable

import aiohttp
import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.drawings import encode
from tests.gateway.conftest import FakeTFServing
from tests.gateway.helpers import errors_counted, upload


def test_root_names_the_api(client: TestClient) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.json() == {"message": "MNIST Classification API"}


def test_healthz_never_calls_upstream(client: TestClient, fake_tf_serving: FakeTFServing) -> None:
    fake_tf_serving.failure = lambda request: pytest.fail("healthz called TF Serving")

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("versions", "status"),
    [
        pytest.param({1: "AVAILABLE"}, 200, id="available"),
        pytest.param({1: "LOADING"}, 503, id="loading"),
        pytest.param({}, 503, id="no-versions"),
    ],
)
def test_readyz_follows_model_state(
    client: TestClient, fake_tf_serving: FakeTFServing, versions: dict[int, str], status: int
) -> None:
    fake_tf_serving.versions = versions

    assert client.get("/readyz").status_code == status


def test_readyz_503_when_upstream_down(client: TestClient, fake_tf_serving: FakeTFServing) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise aiohttp.ClientConnectionError("refused")

    fake_tf_serving.failure = refuse

    response = client.get("/readyz")

    assert response.status_code == 503
    assert "detail" in response.json()


def test_readyz_checks_pinned_version(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.versions = {1: "AVAILABLE", 2: "END"}

    assert make_client(model_version=1).get("/readyz").status_code == 200
    assert make_client(model_version=2).get("/readyz").status_code == 503


def test_readyz_malformed_status_answer_is_502(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.failure = lambda request: httpx.Response(
        200, json={"model_version_status": [{"v": 1}]}
    )

    response = client.get("/readyz")

    assert response.status_code == 502
    assert "expected shape" in response.json()["detail"]


def test_metrics_count_requests_errors_and_digits(client: TestClient) -> None:
    client.post("/predict", files=upload())
    client.post("/predict", files=upload(b"not an image"))

    text = client.get("/metrics").text

    assert 'gateway_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    assert 'gateway_errors_total{kind="invalid_image"} 1.0' in text
    assert 'gateway_predicted_digit_total{digit="5",model_version="1"} 1.0' in text
    assert "gateway_upstream_duration_seconds_bucket" in text
    assert "gateway_preprocess_duration_seconds_count 2.0" in text


def test_readyz_names_the_version_predict_would_use(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.versions = {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE"}
    fake_tf_serving.labels = {"canary": 1}

    newest = make_client().get("/readyz")
    labelled = make_client(model_label="canary").get("/readyz")
    fake_tf_serving.labels["stable"] = 2
    stable = make_client().get("/readyz")

    assert newest.json() == {"status": "ready", "model_version": "3"}
    assert labelled.json() == {"status": "ready", "model_version": "1"}
    assert stable.json() == {"status": "ready", "model_version": "2"}


def test_readyz_looks_afresh_despite_the_version_cache(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    client = make_client(version_cache_s=3600)
    assert client.get("/readyz").status_code == 200

    fake_tf_serving.versions = {1: "UNLOADING"}

    assert client.get("/readyz").status_code == 503


def test_readyz_with_an_unset_label_is_503(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    response = make_client(model_label="stable").get("/readyz")

    assert response.status_code == 503
    assert "'stable'" in response.json()["detail"]


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE gateway_requests_total counter" in response.text


def test_each_error_is_counted_once_whoever_answers_it(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    client = make_client(max_upload_bytes=10_000)
    blank = encode(Image.new("L", (40, 40), 255))
    files = [("files", ("a.png", upload()["file"][1], "image/png"))] + [
        ("files", (f"{i}.png", blank, "image/png")) for i in range(2)
    ]
    assert client.post("/predict/batch", files=files).status_code == 200  # two no-digit files
    assert client.post("/predict", files=upload(b"x" * 20_000)).status_code == 413
    assert client.post("/predict?version=0", files=upload()).status_code == 422

    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug")

    fake_tf_serving.failure = broken
    failing = TestClient(client.app, raise_server_exceptions=False)
    assert failing.post("/predict", files=upload()).status_code == 500

    assert errors_counted(client) == {
        "no_digit": 2.0,
        "too_large": 1.0,
        "bad_parameters": 1.0,
        "internal": 1.0,
    }
