"""GET /model (gateway/routes/model.py): the served versions, the pins, the canary and the
model card, against a fake TF Serving."""

from collections.abc import Callable
from pathlib import Path

import aiohttp
import httpx
from fastapi.testclient import TestClient

from tests.gateway.conftest import FakeTFServing


def test_model_reports_versions_and_card(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing, tmp_path: Path
) -> None:
    base = tmp_path
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


def test_model_reports_the_configured_pin_and_its_version(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.versions = {1: "AVAILABLE", 2: "AVAILABLE"}
    fake_tf_serving.labels = {"stable": 1}

    by_label = make_client(model_label="stable").get("/model").json()
    by_version = make_client(model_version=2).get("/model").json()

    assert (by_label["pinned_label"], by_label["pinned_version"]) == ("stable", None)
    assert by_label["serving_version"] == "1"
    assert (by_version["pinned_label"], by_version["pinned_version"]) == (None, 2)
    assert by_version["serving_version"] == "2"


def test_model_reports_the_canary_and_where_its_label_points(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.versions = {1: "AVAILABLE", 2: "AVAILABLE"}
    fake_tf_serving.labels = {"stable": 1, "canary": 2}

    on = make_client(model_label="stable", canary_percent=10).get("/model").json()
    off = make_client(model_label="stable").get("/model").json()

    assert (on["canary_percent"], on["canary_label"], on["canary_version"]) == (10, "canary", "2")
    assert (off["canary_percent"], off["canary_label"], off["canary_version"]) == (0, None, None)


def test_model_canary_label_without_a_version_is_null_not_an_error(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing
) -> None:
    response = make_client(canary_percent=10).get("/model")

    assert response.status_code == 200
    assert response.json()["canary_label"] == "canary"
    assert response.json()["canary_version"] is None
    assert response.json()["serving_version"] == "1"


def test_model_without_an_available_version_still_lists_the_versions(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    fake_tf_serving.versions = {1: "LOADING"}

    response = client.get("/model")

    assert response.status_code == 200
    body = response.json()
    assert body["serving_version"] is None
    assert body["versions"] == [{"version": "1", "state": "LOADING", "error_message": ""}]
    assert body["model_card"] is None


def test_model_without_a_readable_card_has_none(
    make_client: Callable[..., TestClient], fake_tf_serving: FakeTFServing, tmp_path: Path
) -> None:
    (tmp_path / "1/assets.extra").mkdir(parents=True)
    (tmp_path / "1/assets.extra/model_card.json").write_text("{not json")

    broken = make_client(model_base_path=str(tmp_path)).get("/model")
    missing = make_client(model_base_path=str(tmp_path / "elsewhere")).get("/model")

    assert broken.status_code == missing.status_code == 200
    assert broken.json()["model_card"] is None
    assert missing.json()["model_card"] is None


def test_model_with_the_model_server_down_is_503(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise aiohttp.ClientConnectionError("refused")

    fake_tf_serving.failure = refuse

    response = client.get("/model")

    assert response.status_code == 503
    assert "unreachable" in response.json()["detail"]
