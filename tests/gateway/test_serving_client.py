"""TFServingClient (gateway/serving_client.py) on its own, over a fake upstream: the
calls it makes, the bodies it sends, and what each kind of answer or failure becomes."""

import base64
from collections.abc import Callable

import aiohttp
import httpx
import numpy as np
import orjson
import pytest

from contract import SIGNATURE_PIXELS
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.serving_client import (
    LabelNotSet,
    ModelOutput,
    TFServingClient,
    VersionInfo,
    VersionNotFound,
    VersionStatus,
    floats_body,
    pixels_body,
)
from tests.gateway.helpers import httpx_send

pytestmark = pytest.mark.anyio

Handler = Callable[[httpx.Request], httpx.Response]
IMAGES = np.random.default_rng(7).random((2, 28, 28)).astype(np.float32)
PROBABILITIES = [0.01] * 5 + [0.91] + [0.01] * 4


class Upstream:
    """A TF Serving stand-in: `handler` answers, every request is kept."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def client(self) -> TFServingClient:
        # A trailing slash on the base URL must not end up in the paths.
        return TFServingClient(httpx_send(self), "http://tf-serving:8501/", "mnist")


def answering(status: int, body: object = None, content: bytes | None = None) -> Upstream:
    if content is not None:
        return Upstream(lambda request: httpx.Response(status, content=content))
    return Upstream(lambda request: httpx.Response(status, json=body))


def failing(*errors: Exception, then: Handler | None = None) -> Upstream:
    """Raises `errors` on the first calls, then answers with `then`."""
    pending = list(errors)

    def handler(request: httpx.Request) -> httpx.Response:
        if pending:
            raise pending.pop(0)
        assert then is not None, "called once more than expected"
        return then(request)

    return Upstream(handler)


def status_entry(version: int, state: str, error: str = "") -> dict[str, object]:
    return {
        "version": str(version),
        "state": state,
        "status": {"error_code": "OK" if not error else "UNKNOWN", "error_message": error},
    }


def metadata(version: int, *signatures: str) -> dict[str, object]:
    return {
        "model_spec": {"name": "mnist", "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": {name: {} for name in signatures}}},
    }


def row(digit: object = 5, confidence: object = 0.91, probabilities: object = None) -> object:
    return {
        "digit": digit,
        "confidence": confidence,
        "probabilities": PROBABILITIES if probabilities is None else probabilities,
    }


PIXELS = VersionInfo(3, takes_pixels=True)
FLOATS = VersionInfo(2, takes_pixels=False)


# --- model_status -------------------------------------------------------------------------


async def test_model_status_lists_every_version_with_state_and_error() -> None:
    upstream = answering(
        200,
        {
            "model_version_status": [
                status_entry(1, "END"),
                status_entry(2, "AVAILABLE"),
                status_entry(3, "END", "could not load"),
            ]
        },
    )

    statuses = await upstream.client().model_status()

    assert statuses == [
        VersionStatus(1, "END", ""),
        VersionStatus(2, "AVAILABLE", ""),
        VersionStatus(3, "END", "could not load"),
    ]
    (request,) = upstream.requests
    assert (request.method, str(request.url)) == ("GET", "http://tf-serving:8501/v1/models/mnist")


async def test_model_status_of_one_version_asks_for_that_version() -> None:
    upstream = answering(200, {"model_version_status": [status_entry(4, "LOADING")]})

    statuses = await upstream.client().model_status(4)

    assert statuses == [VersionStatus(4, "LOADING", "")]
    assert upstream.requests[0].url.path == "/v1/models/mnist/versions/4"


async def test_model_status_entry_without_status_has_empty_error_message() -> None:
    upstream = answering(200, {"model_version_status": [{"version": "2", "state": "AVAILABLE"}]})

    assert await upstream.client().model_status() == [VersionStatus(2, "AVAILABLE", "")]


async def test_model_status_404_means_no_versions() -> None:
    upstream = answering(404, {"error": "Could not find any versions of model mnist"})

    assert await upstream.client().model_status() == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"versions": []}, id="no-status-list"),
        pytest.param({"model_version_status": [{"v": 1}]}, id="entry-without-version"),
        pytest.param({"model_version_status": [{"version": "x", "state": "A"}]}, id="nan-version"),
        pytest.param({"model_version_status": ["1"]}, id="entry-not-an-object"),
        pytest.param({"model_version_status": 3}, id="not-a-list"),
    ],
)
async def test_model_status_of_unexpected_shape_is_upstream_error(body: object) -> None:
    with pytest.raises(UpstreamError, match="status answer does not have the expected shape"):
        await answering(200, body).client().model_status()


async def test_model_status_json_that_is_not_an_object_is_upstream_error() -> None:
    with pytest.raises(UpstreamError, match=r"\(200\)"):
        await answering(200, [1, 2]).client().model_status()


# --- version_info -------------------------------------------------------------------------


async def test_version_info_of_a_version_reads_its_metadata() -> None:
    upstream = answering(200, metadata(3, "serving_default", SIGNATURE_PIXELS))

    info = await upstream.client().version_info(3)

    assert info == VersionInfo(3, takes_pixels=True)
    (request,) = upstream.requests
    assert (request.method, request.url.path) == ("GET", "/v1/models/mnist/versions/3/metadata")


async def test_version_info_of_a_label_is_the_version_it_points_at() -> None:
    upstream = answering(200, metadata(7, "serving_default", SIGNATURE_PIXELS))

    info = await upstream.client().version_info(label="stable")

    assert info == VersionInfo(7, takes_pixels=True)
    assert upstream.requests[0].url.path == "/v1/models/mnist/labels/stable/metadata"


async def test_version_info_without_the_pixel_signature_takes_floats() -> None:
    upstream = answering(200, metadata(1, "serving_default", "predict_image_bytes"))

    assert await upstream.client().version_info(1) == VersionInfo(1, takes_pixels=False)


@pytest.mark.parametrize(
    ("status", "version", "label"),
    [
        pytest.param(404, 9, None, id="version-not-loaded"),
        pytest.param(404, None, "stable", id="label-version-not-loaded"),
    ],
)
async def test_version_info_of_nothing_loaded_is_none(
    status: int, version: int | None, label: str | None
) -> None:
    upstream = answering(status, {"error": "Servable not found"})

    assert await upstream.client().version_info(version, label) is None


async def test_version_info_of_a_label_not_set_says_so() -> None:
    upstream = answering(400, {"error": "Unrecognized servable version label: nightly"})

    with pytest.raises(LabelNotSet):
        await upstream.client().version_info(None, "nightly")


async def test_version_info_400_for_a_version_is_upstream_error() -> None:
    upstream = answering(400, {"error": "Malformed request"})

    with pytest.raises(UpstreamError, match=r"\(400\): Malformed request"):
        await upstream.client().version_info(3)


async def test_version_info_503_is_upstream_unavailable() -> None:
    upstream = answering(503, {"error": "server is starting"})

    with pytest.raises(UpstreamUnavailable, match="server is starting"):
        await upstream.client().version_info(label="stable")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"model_spec": {"version": "3"}}, id="no-metadata"),
        pytest.param({"metadata": metadata(3)["metadata"]}, id="no-model-spec"),
        pytest.param({**metadata(3), "model_spec": {"version": "three"}}, id="nan-version"),
    ],
)
async def test_version_info_of_unexpected_shape_is_upstream_error(body: object) -> None:
    with pytest.raises(UpstreamError, match="metadata answer does not have the expected shape"):
        await answering(200, body).client().version_info(3)


# --- predict ------------------------------------------------------------------------------


async def test_predict_sends_784_pixel_bytes_to_a_version_with_the_pixel_signature() -> None:
    upstream = answering(200, {"predictions": [row(), row()]})

    await upstream.client().predict(IMAGES, PIXELS)

    (request,) = upstream.requests
    assert (request.method, request.url.path) == ("POST", "/v1/models/mnist/versions/3:predict")
    assert request.headers["content-type"] == "application/json"
    body = orjson.loads(request.content)
    assert body["signature_name"] == SIGNATURE_PIXELS
    sent = [base64.b64decode(instance["b64"]) for instance in body["instances"]]
    assert [len(pixels) for pixels in sent] == [784, 784]
    expected = np.rint(IMAGES * 255).astype(np.uint8)
    for pixels, image in zip(sent, expected, strict=True):
        assert np.array_equal(np.frombuffer(pixels, np.uint8).reshape(28, 28), image)


async def test_predict_sends_json_floats_to_a_version_without_the_pixel_signature() -> None:
    upstream = answering(200, {"predictions": [row(), row()]})

    await upstream.client().predict(IMAGES, FLOATS)

    (request,) = upstream.requests
    assert request.url.path == "/v1/models/mnist/versions/2:predict"
    body = orjson.loads(request.content)
    assert "signature_name" not in body
    instances = np.asarray(body["instances"], dtype=np.float32)
    assert instances.shape == (2, 28, 28, 1)
    assert np.allclose(instances[..., 0], IMAGES)


async def test_predict_answers_each_row_as_the_model_computed_it() -> None:
    other = [0.1] * 7 + [0.3] + [0.0] * 2
    upstream = answering(200, {"predictions": [row(), row(7, 0.3, other)]})

    outputs = await upstream.client().predict(IMAGES, PIXELS)

    assert outputs == [ModelOutput(5, 0.91, PROBABILITIES), ModelOutput(7, 0.3, other)]


async def test_predict_accepts_integral_confidence_and_probabilities() -> None:
    one_hot: list[float] = [0] * 10
    one_hot[4] = 1
    upstream = answering(200, {"predictions": [row(4, 1, one_hot)]})

    (output,) = await upstream.client().predict(IMAGES[:1], PIXELS)

    assert output == ModelOutput(4, 1.0, one_hot)
    assert isinstance(output.confidence, float)


async def test_predict_404_is_version_not_found() -> None:
    upstream = answering(404, {"error": "Servable not found for request: Specific(mnist, 3)"})

    with pytest.raises(VersionNotFound):
        await upstream.client().predict(IMAGES, PIXELS)


async def test_predict_503_is_upstream_unavailable_with_the_upstream_error() -> None:
    with pytest.raises(UpstreamUnavailable, match="unavailable or at capacity: overloaded"):
        await answering(503, {"error": "overloaded"}).client().predict(IMAGES, PIXELS)


@pytest.mark.parametrize("status", [400, 401, 429, 500, 502])
async def test_predict_other_error_statuses_are_upstream_error_with_its_text(
    status: int,
) -> None:
    upstream = answering(status, {"error": "Input to reshape is a tensor with 3 values"})

    with pytest.raises(UpstreamError) as failed:
        await upstream.client().predict(IMAGES, PIXELS)

    assert failed.value.status_code == 502
    assert failed.value.detail == (
        f"The model server answered with an error ({status}): "
        "Input to reshape is a tensor with 3 values."
    )


@pytest.mark.parametrize(
    ("status", "content"),
    [
        pytest.param(200, b"<html>proxy</html>", id="200-html"),
        pytest.param(502, b"Bad Gateway", id="502-text"),
        pytest.param(200, b"", id="200-empty"),
    ],
)
async def test_predict_answer_that_is_not_json_is_upstream_error(
    status: int, content: bytes
) -> None:
    with pytest.raises(UpstreamError, match="no JSON body"):
        await answering(status, content=content).client().predict(IMAGES, PIXELS)


@pytest.mark.parametrize(
    "predictions",
    [
        pytest.param([row()], id="one-row-for-two-images"),
        pytest.param([row(), row(), row()], id="three-rows-for-two-images"),
        pytest.param([row(), {"digit": 5, "confidence": 0.9}], id="no-probabilities"),
        pytest.param([row(), {"confidence": 0.9, "probabilities": PROBABILITIES}], id="no-digit"),
        pytest.param([row(), {"digit": 5, "probabilities": PROBABILITIES}], id="no-confidence"),
        pytest.param([row(), row(probabilities=PROBABILITIES[:9])], id="9-probabilities"),
        pytest.param([row(), row(probabilities=[*PROBABILITIES, 0.0])], id="11-probabilities"),
        pytest.param([row(), row(digit=10)], id="digit-10"),
        pytest.param([row(), row(digit=-1)], id="digit-negative"),
        pytest.param([row(), row(digit=5.0)], id="digit-float"),
        pytest.param([row(), row(digit="5")], id="digit-string"),
        pytest.param([row(), row(digit=True)], id="digit-bool"),
        pytest.param([row(), row(confidence="0.9")], id="confidence-string"),
        pytest.param(
            [row(), row(probabilities=[str(p) for p in PROBABILITIES])], id="string-probabilities"
        ),
        pytest.param([row(), row(probabilities=0.5)], id="not-a-list"),
        pytest.param([row(), [5, 0.9, PROBABILITIES]], id="row-not-an-object"),
        pytest.param({"digit": [5, 5]}, id="predictions-not-a-list"),
    ],
)
async def test_predict_malformed_predictions_are_upstream_error(predictions: object) -> None:
    upstream = answering(200, {"predictions": predictions})

    with pytest.raises(UpstreamError, match="predict answer does not have the expected shape"):
        await upstream.client().predict(IMAGES, PIXELS)


async def test_predict_answer_without_predictions_is_upstream_error() -> None:
    upstream = answering(200, {"outputs": {"digit": [5, 5]}})

    with pytest.raises(UpstreamError, match="expected shape"):
        await upstream.client().predict(IMAGES, PIXELS)


# --- transport failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(aiohttp.ConnectionTimeoutError("slow connect"), id="connect-timeout"),
        pytest.param(aiohttp.ServerDisconnectedError(), id="dropped-keep-alive"),
    ],
)
async def test_connection_failure_is_retried_once_on_a_new_call(error: Exception) -> None:
    upstream = failing(error, then=lambda request: httpx.Response(200, json=metadata(3)))

    info = await upstream.client().version_info(3)

    assert info == VersionInfo(3, takes_pixels=False)
    assert len(upstream.requests) == 2


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(aiohttp.ConnectionTimeoutError("slow connect"), id="connect-timeout"),
        pytest.param(aiohttp.ServerDisconnectedError(), id="dropped-keep-alive"),
    ],
)
async def test_connection_failing_twice_is_upstream_unavailable(error: Exception) -> None:
    upstream = failing(error, error)

    with pytest.raises(UpstreamUnavailable, match="unreachable"):
        await upstream.client().predict(IMAGES, PIXELS)

    assert len(upstream.requests) == 2


async def test_read_timeout_is_upstream_timeout_without_a_retry() -> None:
    upstream = failing(aiohttp.SocketTimeoutError("slow"))

    with pytest.raises(UpstreamTimeout, match="did not answer in time"):
        await upstream.client().predict(IMAGES, PIXELS)

    assert len(upstream.requests) == 1


async def test_other_transport_errors_are_upstream_unavailable_without_a_retry() -> None:
    upstream = failing(aiohttp.ClientOSError(104, "connection reset"))

    with pytest.raises(UpstreamUnavailable, match="unreachable"):
        await upstream.client().model_status()

    assert len(upstream.requests) == 1


# --- request ids --------------------------------------------------------------------------


async def test_request_id_is_forwarded_on_every_call() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"predictions": [row(), row()]})
        if request.url.path.endswith("/metadata"):
            return httpx.Response(200, json=metadata(3, SIGNATURE_PIXELS))
        return httpx.Response(200, json={"model_version_status": [status_entry(3, "AVAILABLE")]})

    upstream = Upstream(answer)
    client = upstream.client()

    await client.model_status(request_id="req-1")
    await client.version_info(3, request_id="req-2")
    await client.predict(IMAGES, PIXELS, request_id="req-3")

    assert [r.headers.get("x-request-id") for r in upstream.requests] == ["req-1", "req-2", "req-3"]


async def test_no_request_id_header_without_a_request_id() -> None:
    upstream = answering(200, {"model_version_status": []})

    await upstream.client().model_status()

    assert "x-request-id" not in upstream.requests[0].headers


# --- bodies -------------------------------------------------------------------------------


def test_pixels_body_rounds_to_bytes_from_black_to_white() -> None:
    images = np.zeros((1, 28, 28), np.float32)
    images[0, 0, :3] = [1.0, 0.5, 0.2]

    body = orjson.loads(pixels_body(images))

    pixels = base64.b64decode(body["instances"][0]["b64"])
    assert list(pixels[:4]) == [255, 128, 51, 0]
    assert body["signature_name"] == SIGNATURE_PIXELS


def test_floats_body_has_a_channel_axis_and_no_signature_name() -> None:
    body = orjson.loads(floats_body(IMAGES))

    assert set(body) == {"instances"}
    assert np.asarray(body["instances"]).shape == (2, 28, 28, 1)
