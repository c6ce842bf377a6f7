"""GatewayMiddleware (gateway/middleware.py) and the CORS layer create_app adds in front of
it: request ids, security headers, the upload limits (413, 503) and the access log."""

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from tests.drawings import draw_digit, encode
from tests.gateway.conftest import FakeTFServing
from tests.gateway.helpers import errors_counted, upload

# Over the 2048-byte upload limit the tests below configure.
BIG_BMP = encode(draw_digit(3, size=400, dark_on_light=True), "BMP")


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    echoed = client.get("/healthz", headers={"X-Request-ID": "req-42"})
    unsafe = client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})

    assert echoed.headers["x-request-id"] == "req-42"
    assert len(unsafe.headers["x-request-id"]) == 32 and " " not in unsafe.headers["x-request-id"]


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


def test_predict_body_over_limit_is_413_before_reading(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    client = make_client(max_upload_bytes=2048)

    response = client.post("/predict", files=upload(BIG_BMP, "big.bmp", "image/bmp"))

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
    assert "larger than 2048 bytes" in response.json()["detail"]
    assert errors_counted(client) == {"too_large": 1.0}  # once, though the app saw it too


def test_overload_answers_503_with_retry_after(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:

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
        deadline = time.monotonic() + 30
        while not fake_tf_serving.predict_requests:  # the first is upstream: held in flight
            assert time.monotonic() < deadline, "the first request never reached upstream"
            time.sleep(0.02)
        second = client.post("/predict", files=upload())
    finally:
        release.set()
        worker.join()

    assert second.status_code == 503
    assert second.headers["retry-after"] == "1"
    assert "at capacity" in second.json()["detail"]
    assert first == [200]


def test_cors_allows_only_configured_origins(make_client: Callable[..., TestClient]) -> None:
    client = make_client(cors_allow_origins=["https://digits.example"])
    preflight = {"Access-Control-Request-Method": "POST"}

    allowed = client.options("/predict", headers={"Origin": "https://digits.example", **preflight})
    denied = client.options("/predict", headers={"Origin": "https://evil.example", **preflight})

    assert allowed.headers["access-control-allow-origin"] == "https://digits.example"
    assert "access-control-allow-origin" not in denied.headers


def test_cors_lets_pages_send_every_header_the_api_reads(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(cors_allow_origins=["https://digits.example"])
    sent = "content-type, x-api-key, x-request-id, x-model-version, x-model-label"

    preflight = client.options(
        "/predict",
        headers={
            "Origin": "https://digits.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": sent,
        },
    )

    assert preflight.status_code == 200
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert set(sent.split(", ")) <= set(allowed.split(", "))


@pytest.mark.parametrize(
    "offered",
    [
        pytest.param("x" * 65, id="too-long"),
        pytest.param("", id="empty"),
        pytest.param("a/b", id="slash"),
        pytest.param("id;rm", id="semicolon"),
    ],
)
def test_request_id_that_is_not_a_short_plain_token_is_replaced(
    client: TestClient, offered: str
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": offered})

    made = response.headers["x-request-id"]
    assert made != offered
    assert len(made) == 32 and int(made, 16) >= 0


def test_request_id_of_64_plain_characters_is_kept(client: TestClient) -> None:
    offered = "A-z_0.9" + "x" * 57

    assert (
        client.get("/healthz", headers={"X-Request-ID": offered}).headers["x-request-id"] == offered
    )


def test_made_request_id_is_the_one_sent_upstream(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    response = client.post("/predict", files=upload())

    made = response.headers["x-request-id"]
    assert fake_tf_serving.predict_requests
    assert {r.headers["x-request-id"] for r in fake_tf_serving.requests} == {made}


def test_413_refusal_closes_the_connection_and_carries_id_and_security_headers(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(max_upload_bytes=2048)

    response = client.post(
        "/predict", files=upload(BIG_BMP, "big.bmp", "image/bmp"), headers={"X-Request-ID": "big-1"}
    )

    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert response.headers["x-request-id"] == "big-1"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_body_limit_applies_to_feedback_too(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(max_upload_bytes=2048, feedback_dir=tmp_path)

    response = client.post(
        "/feedback", files={"file": ("big.bmp", BIG_BMP, "image/bmp")}, data={"label": "3"}
    )

    assert response.status_code == 413


def test_refusals_are_counted_in_metrics(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_upload_bytes=2048)
    client.post("/predict", files=upload(BIG_BMP, "big.bmp", "image/bmp"))

    text = client.get("/metrics").text

    assert 'gateway_errors_total{kind="too_large"} 1.0' in text
    assert 'gateway_requests_total{method="POST",route="unmatched",status="413"} 1.0' in text


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [
        orjson.loads(record.getMessage())
        for record in caplog.records
        if record.name == "gateway.access"
    ]


def test_access_log_has_one_json_line_per_request(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")

    client.get("/healthz", headers={"X-Request-ID": "log-1"})
    client.post("/predict", files=upload(b"not an image"), headers={"X-Request-ID": "log-2"})

    lines = access_lines(caplog)
    assert [
        (line["request_id"], line["method"], line["path"], line["status"]) for line in lines
    ] == [
        ("log-1", "GET", "/healthz", 200),
        ("log-2", "POST", "/predict", 400),
    ]
    assert all(isinstance(line["duration_ms"], float | int) for line in lines)
    assert all(line["duration_ms"] >= 0 for line in lines)  # type: ignore[operator]


def test_access_log_records_refusals_and_never_the_api_key(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(api_keys=["s3cret-key"], max_upload_bytes=2048)
    caplog.set_level(logging.INFO, logger="gateway.access")

    client.post("/predict", files=upload(BIG_BMP, "big.bmp", "image/bmp"))
    client.post("/predict", files=upload(), headers={"X-API-Key": "s3cret-key"})

    lines = access_lines(caplog)
    assert [line["status"] for line in lines] == [413, 200]
    assert all(
        set(line) == {"request_id", "method", "path", "status", "duration_ms"} for line in lines
    )
    assert "s3cret-key" not in caplog.text


def test_cors_exposes_the_request_id_to_pages(make_client: Callable[..., TestClient]) -> None:
    client = make_client(cors_allow_origins=["https://digits.example"])

    response = client.get("/healthz", headers={"Origin": "https://digits.example"})

    assert response.headers["access-control-allow-origin"] == "https://digits.example"
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


def test_cors_is_off_without_configured_origins(client: TestClient) -> None:
    response = client.options(
        "/predict",
        headers={"Origin": "https://digits.example", "Access-Control-Request-Method": "POST"},
    )

    assert "access-control-allow-origin" not in response.headers
