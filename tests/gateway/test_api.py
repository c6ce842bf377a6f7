"""The gateway's public API (contract 3) against a fake TF Serving."""

from collections.abc import Callable

import httpx
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from tests.digit_images import draw_digit, encode
from tests.gateway.conftest import FakeTFServing

PNG = encode(draw_digit(5, size=120, stroke=3, dark_on_light=True))


def upload(
    data: bytes = PNG, name: str = "digit.png", content_type: str = "image/png"
) -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, data, content_type)}


def test_root_names_the_api(client: TestClient) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.json() == {"message": "MNIST Classification API"}


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


def test_predict_sends_normalised_28x28_row_format_to_pinned_version_path(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    client.post("/predict", files=upload(), headers={"X-Request-ID": "abc-123"})

    (call,) = fake_tf_serving.predict_requests
    assert call.url.path == "/v1/models/mnist/versions/1:predict"
    assert call.headers["X-Request-ID"] == "abc-123"
    instances = np.asarray(orjson.loads(call.content)["instances"])
    assert instances.shape == (1, 28, 28, 1)
    assert instances.min() >= 0 and instances.max() == pytest.approx(1.0, abs=0.05)
    assert instances[0, 0, :, 0].max() == 0  # black border, as MNIST


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
    assert np.asarray(orjson.loads(call.content)["instances"]).shape == (4, 28, 28, 1)


def test_batch_names_the_bad_file(client: TestClient, fake_tf_serving: FakeTFServing) -> None:
    files = [
        ("files", ("good.png", PNG, "image/png")),
        ("files", ("blank.png", encode(draw_digit(0, size=40).point(lambda _: 0)), "image/png")),
    ]

    response = client.post("/predict/batch", files=files)

    assert response.status_code == 422
    assert response.json()["detail"].startswith("File 1 (blank.png): No digit found")
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


def test_predict_body_over_limit_is_413_before_reading(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    client = make_client(max_upload_bytes=2048)
    big = encode(draw_digit(3, size=400, dark_on_light=True), "BMP")

    response = client.post("/predict", files=upload(big, "big.bmp", "image/bmp"))

    assert response.status_code == 413
    assert "larger than 2048 bytes" in response.json()["detail"]
    assert fake_tf_serving.predict_requests == []


def test_predict_streamed_body_over_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_upload_bytes=2048)

    def chunks() -> object:
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(10):
            yield b"\0" * 1024

    response = client.post(
        "/predict", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"}
    )

    assert response.status_code == 413


def test_predict_too_many_pixels_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_image_pixels=100 * 100)

    response = client.post("/predict", files=upload(encode(draw_digit(4, size=101))))

    assert response.status_code == 413
    assert "more than 10000 pixels" in response.json()["detail"]


@pytest.mark.parametrize(
    ("failure", "status", "phrase"),
    [
        pytest.param(httpx.ConnectError("refused"), 503, "unreachable", id="connection-refused"),
        pytest.param(httpx.ReadTimeout("slow"), 504, "did not answer in time", id="timeout"),
        pytest.param(
            httpx.ConnectTimeout("slow connect"), 503, "unreachable", id="connect-timeout"
        ),
        pytest.param(httpx.RemoteProtocolError("reset"), 503, "unreachable", id="dropped"),
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
        raise httpx.ConnectError("refused")

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


def test_model_reports_versions_and_card(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing, tmp_path: object
) -> None:
    from pathlib import Path

    base = Path(str(tmp_path))
    (base / "2/assets.extra").mkdir(parents=True)
    (base / "2/assets.extra/model_card.json").write_text('{"test_accuracy": 0.996}')
    fake_tf_serving.versions = {1: "END", 2: "AVAILABLE"}
    client = make_client(model_base_path=str(base))

    response = client.get("/model")

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "mnist"
    assert body["serving_version"] == "2"
    assert [v["state"] for v in body["versions"]] == ["END", "AVAILABLE"]
    assert body["model_card"] == {"test_accuracy": 0.996}


def test_api_keys_guard_predictions_not_health(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_keys=["s3cret", "other"])

    assert client.post("/predict", files=upload()).status_code == 401
    assert (
        client.post("/predict", files=upload(), headers={"X-API-Key": "wrong"}).status_code == 401
    )
    assert (
        client.post("/predict", files=upload(), headers={"X-API-Key": "other"}).status_code == 200
    )
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_cors_allows_only_configured_origins(make_client: Callable[..., TestClient]) -> None:
    client = make_client(cors_allow_origins=["https://digits.example"])
    preflight = {"Access-Control-Request-Method": "POST"}

    allowed = client.options("/predict", headers={"Origin": "https://digits.example", **preflight})
    denied = client.options("/predict", headers={"Origin": "https://evil.example", **preflight})

    assert allowed.headers["access-control-allow-origin"] == "https://digits.example"
    assert "access-control-allow-origin" not in denied.headers


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    echoed = client.get("/healthz", headers={"X-Request-ID": "req-42"})
    unsafe = client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})

    assert echoed.headers["x-request-id"] == "req-42"
    assert len(unsafe.headers["x-request-id"]) == 32 and " " not in unsafe.headers["x-request-id"]


def test_metrics_count_requests_errors_and_digits(client: TestClient) -> None:
    client.post("/predict", files=upload())
    client.post("/predict", files=upload(b"not an image"))

    text = client.get("/metrics").text

    assert 'gateway_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    assert 'gateway_errors_total{kind="invalid_image"} 1.0' in text
    assert 'gateway_predicted_digit_total{digit="5",model_version="1"} 1.0' in text
    assert "gateway_upstream_duration_seconds_bucket" in text
    assert "gateway_preprocess_duration_seconds_count 2.0" in text


def test_openapi_documents_predict_and_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    predict = schema["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "415", "422", "502", "503", "504"} <= set(predict["responses"])
    assert client.get("/docs").status_code == 200


def test_security_headers_on_every_response_and_csp_on_the_page(client: TestClient) -> None:
    api = client.get("/healthz")
    page = client.get("/ui/")

    for response in (api, page):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert page.status_code == 200 and "<canvas" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "content-security-policy" not in api.headers


def test_ui_settings_tell_the_page_about_api_keys(make_client: Callable[..., TestClient]) -> None:
    assert make_client().get("/ui/settings").json()["api_key_required"] is False
    assert make_client(api_keys=["k"]).get("/ui/settings").json()["api_key_required"] is True


def test_overload_answers_503_with_retry_after(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    import asyncio
    import threading

    client = make_client(max_in_flight=1)
    release = threading.Event()
    original = fake_tf_serving.predictions

    async def slow(request: httpx.Request, version: int) -> httpx.Response:
        while not release.is_set():  # hold the first prediction in flight
            await asyncio.sleep(0.01)
        return original(request, version)

    fake_tf_serving.predictions = slow  # type: ignore[method-assign]
    first: list[int] = []
    worker = threading.Thread(
        target=lambda: first.append(client.post("/predict", files=upload()).status_code)
    )
    worker.start()
    try:
        for _ in range(100):
            if fake_tf_serving.predict_requests:
                break
            threading.Event().wait(0.02)
        second = client.post("/predict", files=upload())
    finally:
        release.set()
        worker.join()

    assert second.status_code == 503
    assert second.headers["retry-after"] == "1"
    assert first == [200]


def test_readyz_malformed_status_answer_is_502(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.failure = lambda request: httpx.Response(
        200, json={"model_version_status": [{"v": 1}]}
    )

    response = client.get("/readyz")

    assert response.status_code == 502
    assert "expected shape" in response.json()["detail"]


def test_predict_label_header_cannot_reach_other_upstream_paths(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    response = client.post("/predict", files=upload(), headers={"X-Model-Label": "../../x"})

    assert response.status_code == 422
    assert fake_tf_serving.requests == []
