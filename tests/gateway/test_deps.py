"""API keys (gateway/deps.py: check_api_key), directly and through the app: which routes
need one, and which keys are accepted."""

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import Request, Response
from fastapi.testclient import TestClient

from gateway.config import Settings
from gateway.deps import KeyedRoute, check_api_key
from gateway.errors import Unauthorized
from tests.gateway.conftest import FakeTFServing
from tests.gateway.helpers import PNG, upload


def keys(*api_keys: str) -> Settings:
    return Settings(_env_file=None, api_keys=list(api_keys))  # type: ignore[call-arg]


def accepted(settings: Settings, offered: str | None) -> bool:
    try:
        check_api_key(settings, offered)
    except Unauthorized:
        return False
    return True


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


def test_api_keys_guard_batch_and_feedback_too(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(api_keys=["s3cret"], feedback_dir=tmp_path)
    batch = [("files", ("a.png", PNG, "image/png"))]

    assert client.post("/predict/batch", files=batch).status_code == 401
    assert client.post("/feedback", files=upload(), data={"label": "5"}).status_code == 401
    assert (
        client.post("/predict/batch", files=batch, headers={"X-API-Key": "s3cret"}).status_code
        == 200
    )
    assert (
        client.post(
            "/feedback", files=upload(), data={"label": "5"}, headers={"X-API-Key": "s3cret"}
        ).status_code
        == 201
    )


def test_missing_api_key_is_401_with_a_sentence_and_no_upstream_call(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    response = make_client(api_keys=["s3cret"]).post("/predict", files=upload())

    assert response.status_code == 401
    assert "X-API-Key" in response.json()["detail"]
    assert fake_tf_serving.requests == []


def test_check_api_key_without_configured_keys_lets_everyone_in() -> None:
    assert accepted(keys(), None)
    assert accepted(keys(), "anything")


@pytest.mark.parametrize("offered", ["one", "two"])
def test_check_api_key_accepts_any_configured_key(offered: str) -> None:
    assert accepted(keys("one", "two"), offered)


@pytest.mark.parametrize(
    "offered",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("on", id="prefix"),
        pytest.param("one ", id="trailing-space"),
        pytest.param("ONE", id="other-case"),
        pytest.param("one,two", id="both-joined"),
    ],
)
def test_check_api_key_refuses_anything_but_an_exact_key(offered: str | None) -> None:
    with pytest.raises(Unauthorized) as refused:
        check_api_key(keys("one", "two"), offered)

    assert refused.value.status_code == 401


@pytest.mark.parametrize(("api_keys", "warned"), [([], True), (["s3cret"], False)])
def test_gateway_without_api_keys_says_so_at_startup(
    make_client: Callable[..., TestClient],
    caplog: pytest.LogCaptureFixture,
    api_keys: list[str],
    warned: bool,
) -> None:
    with caplog.at_level("WARNING", logger="gateway.main"):
        make_client(api_keys=api_keys)

    assert any("GATEWAY_API_KEYS is empty" in r.getMessage() for r in caplog.records) is warned


def test_keyed_route_refuses_an_endpoint_that_takes_more_than_the_request() -> None:
    async def endpoint(request: Request, version: int) -> Response:
        return Response()

    with pytest.raises(TypeError, match="takes the request alone"):
        KeyedRoute("/read", endpoint, methods=["POST"])
