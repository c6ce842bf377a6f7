"""The weighted canary (GATEWAY_CANARY_PERCENT / GATEWAY_CANARY_LABEL) against a fake TF Serving."""

import random
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.gateway.conftest import FakeTFServing
from tests.gateway.helpers import PNG, upload


@pytest.fixture
def two_versions(fake_tf_serving: FakeTFServing) -> FakeTFServing:
    """Version 1 labelled stable, version 2 labelled canary, both AVAILABLE."""
    fake_tf_serving.versions = {1: "AVAILABLE", 2: "AVAILABLE"}
    fake_tf_serving.labels = {"stable": 1, "canary": 2}
    return fake_tf_serving


def draws(numbers: list[float]) -> Callable[[], float]:
    """The gateway's random draws: these, in order."""
    found: Iterator[float] = iter(numbers)
    return lambda: next(found)


def canary_metadata_calls(fake: FakeTFServing) -> int:
    return sum(r.url.path == "/v1/models/mnist/labels/canary/metadata" for r in fake.requests)


def test_canary_share_of_draws_goes_to_canary_label_rest_to_primary(
    make_client: Callable[..., TestClient], two_versions: FakeTFServing
) -> None:
    client = make_client(
        model_label="stable", canary_percent=20, draw=draws([0.05, 0.5, 0.19, 0.2, 0.99])
    )

    versions = [client.post("/predict", files=upload()).json()["model_version"] for _ in range(5)]

    assert versions == ["2", "1", "2", "1", "1"]
    assert [r.url.path for r in two_versions.predict_requests] == [
        f"/v1/models/mnist/versions/{v}:predict" for v in versions
    ]


def test_canary_seeded_share_is_near_the_percent(
    make_client: Callable[..., TestClient], two_versions: FakeTFServing
) -> None:
    client = make_client(model_label="stable", canary_percent=30, draw=random.Random(18).random)

    versions = [client.post("/predict", files=upload()).json()["model_version"] for _ in range(200)]

    assert 40 <= versions.count("2") <= 80  # 60 expected; 3 standard deviations each side
    assert set(versions) == {"1", "2"}


def test_canary_without_a_configured_pin_the_rest_go_to_stable(
    make_client: Callable[..., TestClient], two_versions: FakeTFServing
) -> None:
    two_versions.versions = {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE"}
    client = make_client(canary_percent=50, draw=draws([0.1, 0.9]))

    first = client.post("/predict", files=upload())
    second = client.post("/predict", files=upload())

    # Version 3 is newer, but no label names it: it gets nothing.
    assert (first.json()["model_version"], second.json()["model_version"]) == ("2", "1")


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        pytest.param("?version=1", {}, id="query-version"),
        pytest.param("?label=stable", {}, id="query-label"),
        pytest.param("", {"X-Model-Version": "1"}, id="header-version"),
        pytest.param("", {"X-Model-Label": "stable"}, id="header-label"),
    ],
)
def test_canary_never_takes_requests_with_a_pin_of_their_own(
    make_client: Callable[..., TestClient],
    two_versions: FakeTFServing,
    query: str,
    headers: dict[str, str],
) -> None:
    client = make_client(canary_percent=100)

    response = client.post(f"/predict{query}", files=upload(), headers=headers)

    assert response.status_code == 200
    assert response.json()["model_version"] == "1"
    assert canary_metadata_calls(two_versions) == 0
    assert 'track="pinned"' in client.get("/metrics").text


def test_canary_off_by_default_never_looks_up_the_label(
    make_client: Callable[..., TestClient], two_versions: FakeTFServing
) -> None:
    client = make_client(model_version=1)

    versions = {client.post("/predict", files=upload()).json()["model_version"] for _ in range(20)}

    assert versions == {"1"}
    assert canary_metadata_calls(two_versions) == 0
    assert "gateway_canary_fallbacks_total{" not in client.get("/metrics").text


def _canary_500(fake: FakeTFServing) -> None:
    original = fake.predictions

    def broken(request: httpx.Request, version: int) -> httpx.Response:
        if version == 2:
            return httpx.Response(500, json={"error": "canary broke"})
        return original(request, version)

    fake.predictions = broken  # type: ignore[method-assign]


def _canary_503(fake: FakeTFServing) -> None:
    original = fake.predictions

    def unavailable(request: httpx.Request, version: int) -> httpx.Response:
        if version == 2:
            return httpx.Response(503, json={"error": "overloaded"})
        return original(request, version)

    fake.predictions = unavailable  # type: ignore[method-assign]


def _canary_times_out(fake: FakeTFServing) -> None:
    original = fake.predictions

    def slow(request: httpx.Request, version: int) -> httpx.Response:
        if version == 2:
            raise TimeoutError("slow canary")
        return original(request, version)

    fake.predictions = slow  # type: ignore[method-assign]


def _label_removed(fake: FakeTFServing) -> None:
    fake.labels = {"stable": 1}


def _canary_version_unloaded(fake: FakeTFServing) -> None:
    fake.versions = {1: "AVAILABLE", 2: "END"}


@pytest.mark.parametrize(
    ("breakage", "reason", "failed_version"),
    [
        pytest.param(_label_removed, "upstream_unavailable", "unknown", id="label-removed"),
        pytest.param(_canary_version_unloaded, "upstream_unavailable", "unknown", id="unloaded"),
        pytest.param(_canary_500, "upstream_error", "2", id="upstream-500"),
        pytest.param(_canary_503, "upstream_unavailable", "2", id="upstream-503"),
        pytest.param(_canary_times_out, "upstream_timeout", "2", id="timeout"),
    ],
)
def test_canary_failure_is_served_by_the_primary_and_counted(
    make_client: Callable[..., TestClient],
    two_versions: FakeTFServing,
    breakage: Callable[[FakeTFServing], None],
    reason: str,
    failed_version: str,
) -> None:
    client = make_client(model_label="stable", canary_percent=100)
    breakage(two_versions)

    response = client.post("/predict", files=upload())

    assert response.status_code == 200
    assert response.json()["model_version"] == "1"
    text = client.get("/metrics").text
    assert f'gateway_canary_fallbacks_total{{reason="{reason}"}} 1.0' in text
    assert (
        "gateway_upstream_duration_seconds_count"
        f'{{model_version="{failed_version}",outcome="{reason}",track="canary"}} 1.0'
    ) in text
    assert (
        "gateway_upstream_duration_seconds_count"
        '{model_version="1",outcome="ok",track="primary"} 1.0'
    ) in text
    assert "gateway_errors_total{" not in text  # the user saw no error


def test_canary_and_primary_both_failing_answers_the_primarys_error(
    make_client: Callable[..., TestClient], two_versions: FakeTFServing
) -> None:
    client = make_client(model_label="stable", canary_percent=100)
    two_versions.failure = lambda request: httpx.Response(500, json={"error": "all broke"})

    response = client.post("/predict", files=upload())

    assert response.status_code == 502
    assert "all broke" in response.json()["detail"]
    text = client.get("/metrics").text
    assert 'gateway_canary_fallbacks_total{reason="upstream_error"} 1.0' in text
    assert 'gateway_errors_total{kind="upstream_error"} 1.0' in text


def test_canary_missing_label_is_remembered_for_the_cache_period(
    make_client: Callable[..., TestClient], two_versions: FakeTFServing
) -> None:
    client = make_client(model_label="stable", canary_percent=100, version_cache_s=60)
    two_versions.labels = {"stable": 1}

    statuses = [client.post("/predict", files=upload()).status_code for _ in range(5)]

    assert statuses == [200] * 5
    assert canary_metadata_calls(two_versions) == 1
    assert 'gateway_canary_fallbacks_total{reason="upstream_unavailable"} 5.0' in (
        client.get("/metrics").text
    )


def test_canary_label_from_a_request_is_not_remembered_when_missing(
    make_client: Callable[..., TestClient], two_versions: FakeTFServing
) -> None:
    client = make_client(version_cache_s=60)

    for _ in range(3):
        assert client.post("/predict?label=nosuch", files=upload()).status_code == 503

    lookups = [r for r in two_versions.requests if r.url.path.endswith("/labels/nosuch/metadata")]
    assert len(lookups) == 3


def test_canary_metrics_per_version_for_comparison(
    make_client: Callable[..., TestClient], two_versions: FakeTFServing
) -> None:
    client = make_client(model_label="stable", canary_percent=50, draw=draws([0.1, 0.9, 0.9]))

    for _ in range(3):
        client.post("/predict", files=upload())
    text = client.get("/metrics").text

    for version, track, count in (("2", "canary", 1), ("1", "primary", 2)):
        assert (
            "gateway_upstream_duration_seconds_count"
            f'{{model_version="{version}",outcome="ok",track="{track}"}} {count}.0'
        ) in text
        assert f'gateway_prediction_confidence_count{{model_version="{version}"}} {count}.0' in text
        digits = f'gateway_predicted_digit_total{{digit="5",model_version="{version}"}}'
        assert f"{digits} {count}.0" in text
    for reason in ("upstream_unavailable", "upstream_error", "upstream_timeout"):
        assert f'gateway_canary_fallbacks_total{{reason="{reason}"}} 0.0' in text


def test_canary_applies_to_batches(
    make_client: Callable[..., TestClient], two_versions: FakeTFServing
) -> None:
    client = make_client(model_label="stable", canary_percent=100)
    files = [("files", (f"{i}.png", PNG, "image/png")) for i in range(3)]

    response = client.post("/predict/batch", files=files)

    assert response.status_code == 200
    assert response.json()["model_version"] == "2"
    assert len(two_versions.predict_requests) == 1


def test_model_reports_the_canary(
    make_client: Callable[..., TestClient], two_versions: FakeTFServing
) -> None:
    on = make_client(model_label="stable", canary_percent=20).get("/model").json()
    off = make_client(model_label="stable").get("/model").json()

    assert (on["canary_percent"], on["canary_label"], on["canary_version"]) == (20.0, "canary", "2")
    assert (off["canary_percent"], off["canary_label"], off["canary_version"]) == (0.0, None, None)
