"""Polling, hot swaps, failed loads and server-side batching, under concurrent requests."""

import asyncio
import base64
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf

from serving.batching import BatchingParameters
from serving.registry import Servable
from serving.server import ServerSettings, create_app
from serving.tf_serving_config import ModelSpec

pytestmark = pytest.mark.anyio
BODY = {"instances": [np.zeros((28, 28, 1)).tolist()]}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def running_server(base: Path, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ServerSettings(models=[ModelSpec("mnist", base)], **settings))  # type: ignore[arg-type]
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
            yield client


async def status(client: httpx.AsyncClient) -> dict[str, tuple[str, str]]:
    body = (await client.get("/v1/models/mnist")).json()
    return {
        entry["version"]: (entry["state"], entry["status"]["error_message"])
        for entry in body["model_version_status"]
    }


async def wait_for(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def assert_version_2_refused_and_1_serves(client: httpx.AsyncClient, reason: str) -> None:
    """Version 2 ends with `reason` in its status; version 1 keeps answering."""

    async def ended() -> bool:
        return (await status(client)).get("2", ("",))[0] == "END"

    await wait_for(ended)
    states = await status(client)
    assert states["1"] == ("AVAILABLE", "")
    assert states["2"][0] == "END" and reason in states["2"][1]
    response = await client.post("/v1/models/mnist:predict", json=BODY)
    assert response.status_code == 200


def publish(source: Path, base: Path, version: int) -> None:
    """Copy beside the base path, then rename: how training publishes."""
    staging = base / f".staging-{version}"
    shutil.copytree(source, staging)
    os.rename(staging, base / str(version))


async def test_new_version_swaps_in_without_failed_requests(model_base: Path) -> None:
    async with running_server(model_base, poll_interval_s=0.2) as client:
        failures: list[int] = []
        answered = 0
        stop = asyncio.Event()

        async def load() -> None:
            nonlocal answered
            while not stop.is_set():
                response = await client.post("/v1/models/mnist:predict", json=BODY)
                if response.status_code != 200:
                    failures.append(response.status_code)
                else:
                    answered += 1
                # An unbatched in-process request never waits on a socket: let others run.
                await asyncio.sleep(0)

        def answers(more: int = 16) -> Callable[[], Awaitable[bool]]:
            """A condition: `more` requests answered beyond those answered now."""
            wanted = answered + more

            async def done() -> bool:
                return answered >= wanted

            return done

        workers = [asyncio.create_task(load()) for _ in range(8)]
        await wait_for(answers())  # requests flow before the swap
        publish(model_base / "1", model_base, 2)

        async def swapped() -> bool:
            return (await status(client)).get("1", ("",))[0] == "END"

        await wait_for(swapped)
        await wait_for(answers())  # and after it
        stop.set()
        await asyncio.gather(*workers)

        assert failures == []
        assert await status(client) == {"1": ("END", ""), "2": ("AVAILABLE", "")}
        version_one = await client.post("/v1/models/mnist/versions/1:predict", json=BODY)
        assert version_one.status_code == 404


async def test_broken_version_is_reported_and_previous_keeps_serving(model_base: Path) -> None:
    async with running_server(model_base, poll_interval_s=0.2) as client:
        broken = model_base / "2"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"not a protobuf")
        await assert_version_2_refused_and_1_serves(client, "Failed to load")


async def test_warmup_records_are_replayed_before_a_version_serves(
    model_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    run = Servable.run

    def recorded(self: Servable, signature: str, inputs: dict[str, np.ndarray]) -> object:
        calls.append(signature)
        return run(self, signature, inputs)

    monkeypatch.setattr(Servable, "run", recorded)
    async with running_server(model_base) as client:
        warm_up = list(calls)
        assert (await client.post("/v1/models/mnist:predict", json=BODY)).status_code == 200

    # The records of every signature, as TF Serving replays them; then the request.
    assert warm_up == ["serving_default", "predict_image_bytes", "predict_pixels"]
    assert calls == [*warm_up, "serving_default"]


async def test_a_failing_warmup_record_fails_the_load(model_base: Path) -> None:
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    staging = model_base / ".staging-2"
    shutil.copytree(model_base / "1", staging)
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name="mnist", signature_name="serving_default")
    )
    # float64 where the signature takes float32: the model cannot run it.
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 28, 28, 1))))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    with tf.io.TFRecordWriter(str(staging / "assets.extra/tf_serving_warmup_requests")) as out:
        out.write(log.SerializeToString())

    async with running_server(model_base, poll_interval_s=0.2) as client:
        os.rename(staging, model_base / "2")
        await assert_version_2_refused_and_1_serves(client, "expected to be a float tensor")


async def test_concurrent_requests_share_model_calls(model_base: Path) -> None:
    batching = BatchingParameters(max_batch_size=64, batch_timeout_s=0.002, num_batch_threads=1)
    async with running_server(model_base, batching=batching) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/models/mnist:predict", json=BODY) for _ in range(48))
        )
        metrics = (await client.get("/monitoring/prometheus/metrics")).text

    assert [r.status_code for r in responses] == [200] * 48
    calls = _metric(metrics, ":tensorflow:serving:batching_session:processed_batch_size_count")
    rows = _metric(metrics, ":tensorflow:serving:batching_session:processed_batch_size_sum")
    assert rows == 48
    assert calls < 48 / 2  # well over one request per model call


async def test_batched_answers_go_to_their_own_requests(model_base: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.random((28, 28, 1)).tolist() for _ in range(12)]
    async with running_server(model_base, batching=BatchingParameters()) as client:
        alone = [
            (await client.post("/v1/models/mnist:predict", json={"instances": [image]})).json()
            for image in images
        ]
        together = await asyncio.gather(
            *(
                client.post("/v1/models/mnist:predict", json={"instances": [image]})
                for image in images
            )
        )

    for single, batched in zip(alone, together, strict=True):
        np.testing.assert_allclose(
            single["predictions"][0]["probabilities"],
            batched.json()["predictions"][0]["probabilities"],
            rtol=1e-4,
            atol=1e-6,
        )


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in metrics")


async def test_without_batching_parameters_requests_are_not_batched(model_base: Path) -> None:
    """As TF Serving without --enable_batching: no size limit, no batching metrics."""
    pixels = [{"b64": base64.b64encode(bytes(784)).decode()}] * 1001  # over the default 1000
    body = {"signature_name": "predict_pixels", "instances": pixels}
    async with running_server(model_base) as client:
        response = await client.post("/v1/models/mnist:predict", json=body)
        metrics = (await client.get("/monitoring/prometheus/metrics")).text

    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 1001
    assert _metric(metrics, ":tensorflow:serving:batching_session:processed_batch_size_count") == 0


async def test_a_request_over_max_batch_size_is_refused_as_tf_serving_refuses_it(
    model_base: Path,
) -> None:
    batching = BatchingParameters(max_batch_size=4)
    async with running_server(model_base, batching=batching) as client:
        response = await client.post(
            "/v1/models/mnist:predict", json={"instances": BODY["instances"] * 5}
        )

    assert response.status_code == 400
    assert response.json() == {"error": "Task size 5 is larger than maximum input batch size 4"}


async def test_large_batch_splitting_runs_a_request_in_execution_sized_batches(
    model_base: Path,
) -> None:
    batching = BatchingParameters(
        max_batch_size=16, enable_large_batch_splitting=True, max_execution_batch_size=4
    )
    async with running_server(model_base, batching=batching) as client:
        response = await client.post(
            "/v1/models/mnist:predict", json={"instances": BODY["instances"] * 10}
        )
        metrics = (await client.get("/monitoring/prometheus/metrics")).text

    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 10
    name = ":tensorflow:serving:batching_session:processed_batch_size"
    assert (_metric(metrics, name + "_count"), _metric(metrics, name + "_sum")) == (3, 10)
