"""The batcher on its own, with a plain Python model: TF Serving's queue rules (task size,
large-batch splitting, a full queue, allowed batch sizes, failed batches) and what happens
to queued requests when a version is retired.

A model that blocks until the test lets it go holds the only batch thread, so the queue's
state at each step is known: nothing here waits on time."""

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from serving.batching import Batcher, BatchingParameters, Tensors
from serving.errors import ServingError
from serving.tf_serving_config import read_batching_parameters

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class GatedModel:
    """Doubles its input; each call waits until the test opens the gate, and records the
    rows it was given."""

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []
        self.started = threading.Semaphore(0)
        self.gate = threading.Event()
        self.fail_with: Exception | None = None

    def __call__(self, inputs: Tensors) -> Tensors:
        self.calls.append(inputs["x"].copy())
        self.started.release()
        self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return {"y": inputs["x"] * 2}

    async def wait_for_call(self) -> None:
        assert await asyncio.to_thread(self.started.acquire, True, 10), "no model call"


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as pool:
        yield pool


def rows(start: int, count: int) -> Tensors:
    return {"x": np.arange(start, start + count, dtype=np.float32)}


async def held_batcher(
    model: GatedModel, executor: ThreadPoolExecutor, **params: object
) -> tuple[Batcher, "asyncio.Future[Tensors]"]:
    """A batcher whose one thread is busy with a first request of one row."""
    batcher = Batcher(model, BatchingParameters(num_batch_threads=1, **params), executor)  # type: ignore[arg-type]
    first = asyncio.ensure_future(batcher.submit(rows(1000, 1)))
    await model.wait_for_call()
    return batcher, first


async def test_batcher_refuses_a_task_larger_than_max_batch_size(
    executor: ThreadPoolExecutor,
) -> None:
    for splitting in (False, True):
        params = BatchingParameters(
            max_batch_size=8,
            enable_large_batch_splitting=splitting,
            max_execution_batch_size=4 if splitting else None,
        )
        batcher = Batcher(GatedModel(), params, executor)
        with pytest.raises(ServingError) as refused:
            await batcher.submit(rows(0, 9))
        assert refused.value.code == "INVALID_ARGUMENT"
        assert refused.value.message == "Task size 9 is larger than maximum input batch size 8"
        await batcher.close()


async def test_batcher_splits_a_large_task_over_the_open_batch_and_the_next(
    executor: ThreadPoolExecutor,
) -> None:
    model = GatedModel()
    batcher, first = await held_batcher(
        model,
        executor,
        max_batch_size=64,
        enable_large_batch_splitting=True,
        max_execution_batch_size=16,
        max_enqueued_batches=8,
    )
    small = asyncio.ensure_future(batcher.submit(rows(0, 10)))
    large = asyncio.ensure_future(batcher.submit(rows(100, 40)))
    await asyncio.sleep(0)  # both are queued before the thread is free again
    model.gate.set()

    answers = await asyncio.gather(first, small, large)

    # The open batch's 6 free rows first, then full batches of 16, then the rest.
    assert [len(call) for call in model.calls] == [1, 16, 16, 16, 2]
    np.testing.assert_array_equal(model.calls[1], np.r_[np.arange(10), np.arange(100, 106)])
    np.testing.assert_array_equal(answers[1]["y"], np.arange(10) * 2)
    np.testing.assert_array_equal(answers[2]["y"], np.arange(100, 140) * 2)
    await batcher.close()


async def test_batcher_refuses_when_the_queue_is_full_without_splitting(
    executor: ThreadPoolExecutor,
) -> None:
    model = GatedModel()
    batcher, first = await held_batcher(model, executor, max_batch_size=4, max_enqueued_batches=2)
    queued = [asyncio.ensure_future(batcher.submit(rows(10 * i, 3))) for i in range(2)]
    await asyncio.sleep(0)
    # Two batches of 3 wait; a task that does not fit the open one needs a third.
    with pytest.raises(ServingError) as refused:
        await batcher.submit(rows(50, 2))
    assert refused.value.code == "UNAVAILABLE"
    assert refused.value.http_status == 503
    assert refused.value.message == (
        "The batch scheduling queue to which this task was submitted is full; currently 2 "
        "batches enqueued and max_enqueued_batches is 2"
    )
    # One that fits the open batch is still taken.
    fits = asyncio.ensure_future(batcher.submit(rows(60, 1)))
    model.gate.set()
    answers = await asyncio.gather(first, *queued, fits)
    np.testing.assert_array_equal(answers[-1]["y"], [120.0])
    await batcher.close()


async def test_batcher_refuses_when_the_queue_is_full_with_splitting(
    executor: ThreadPoolExecutor,
) -> None:
    model = GatedModel()
    batcher, first = await held_batcher(
        model,
        executor,
        max_batch_size=32,
        enable_large_batch_splitting=True,
        max_execution_batch_size=8,
        max_enqueued_batches=2,
    )
    queued = asyncio.ensure_future(batcher.submit(rows(0, 11)))  # a full batch and 3 rows
    await asyncio.sleep(0)
    with pytest.raises(ServingError) as refused:
        await batcher.submit(rows(50, 6))
    assert refused.value.code == "UNAVAILABLE"
    assert refused.value.message == (
        "The batch scheduling queue to which this task was submitted is full; task size is 6 "
        "but scheduling capacity is only 5 (num_enqueued_batches=2, max_enqueued_batches=2, "
        "open_batch_size=3, max_execution_batch_size=8)"
    )
    model.gate.set()
    await asyncio.gather(first, queued)
    await batcher.close()


async def test_batcher_pads_to_an_allowed_size_with_the_last_task_first_row(
    executor: ThreadPoolExecutor,
) -> None:
    model = GatedModel()
    batcher, first = await held_batcher(
        model, executor, max_batch_size=8, allowed_batch_sizes=(1, 4, 8)
    )
    queued = [
        asyncio.ensure_future(batcher.submit(rows(0, 2))),
        asyncio.ensure_future(batcher.submit(rows(20, 3))),
    ]
    await asyncio.sleep(0)
    model.gate.set()
    answers = await asyncio.gather(first, *queued)

    np.testing.assert_array_equal(model.calls[1], [0, 1, 20, 21, 22, 20, 20, 20])
    np.testing.assert_array_equal(answers[1]["y"], [0, 2])
    np.testing.assert_array_equal(answers[2]["y"], [40, 42, 44])
    await batcher.close()


async def test_batcher_fails_every_request_of_a_failed_batch(executor: ThreadPoolExecutor) -> None:
    model = GatedModel()
    batcher, first = await held_batcher(model, executor, max_batch_size=8)
    queued = [asyncio.ensure_future(batcher.submit(rows(10 * i, 2))) for i in range(3)]
    await asyncio.sleep(0)
    model.fail_with = ServingError("INVALID_ARGUMENT", "one bad row")
    model.gate.set()

    results = await asyncio.gather(first, *queued, return_exceptions=True)

    assert all(isinstance(r, ServingError) and r.message == "one bad row" for r in results[1:])
    assert len(model.calls) == 2  # one call for the three: no retries one by one
    await batcher.close()


async def test_closing_serves_every_queued_request(executor: ThreadPoolExecutor) -> None:
    model = GatedModel()
    batcher, first = await held_batcher(model, executor, max_batch_size=4, max_enqueued_batches=64)
    values = np.arange(200, dtype=np.float32)
    requests = [asyncio.ensure_future(batcher.submit({"x": values[i : i + 1]})) for i in range(200)]
    await asyncio.sleep(0)  # every request queued behind the running batch
    closing = asyncio.ensure_future(batcher.close())
    model.gate.set()

    await asyncio.wait_for(closing, timeout=10)

    done, pending = await asyncio.wait(requests, timeout=5)
    assert not pending, f"{len(pending)} requests never answered"
    answers = np.concatenate([request.result()["y"] for request in requests])
    np.testing.assert_array_equal(answers, values * 2)
    assert (await first)["y"][0] == 2000


def test_shipped_batching_config_is_read_as_tf_serving_reads_it() -> None:
    params = read_batching_parameters(ROOT / "serving" / "batching.config")
    assert params.enable_large_batch_splitting
    assert params.execution_batch_size < params.max_batch_size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "max_batch_size { value: 32 } allowed_batch_sizes: 8 allowed_batch_sizes: 16",
            "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 16; "
            "expected 32",
            id="allowed-sizes-end-below-max",
        ),
        pytest.param(
            "max_batch_size { value: 16 } enable_large_batch_splitting { value: true } "
            "max_execution_batch_size { value: 32 }",
            "When enable_large_batch_splitting is true, input_batch_size_limit must be greater "
            "than or equal to max_execution_batch_size; was 16 < 32",
            id="execution-size-above-max",
        ),
        pytest.param(
            "num_batch_threads { value: 0 }",
            "num_batch_threads must be positive; was 0",
            id="no-threads",
        ),
        pytest.param(
            "max_enqueued_batches { value: 0 } enable_large_batch_splitting { value: true } "
            "max_batch_size { value: 8 }",
            "max_enqueued_batches must be positive; was 0",
            id="no-queue-when-splitting",
        ),
    ],
)
def test_batching_config_tf_serving_refuses_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "batching.config"
    path.write_text(text)
    with pytest.raises(ValueError) as refused:
        read_batching_parameters(path)
    assert str(refused.value) == f"{path}: INVALID_ARGUMENT: {message}"


def test_batching_config_defaults_are_tf_serving_defaults(tmp_path: Path) -> None:
    path = tmp_path / "batching.config"
    path.write_text("max_enqueued_batches { value: 0 }")  # rewritten to 1 without splitting
    params = read_batching_parameters(path)
    assert (params.max_batch_size, params.batch_timeout_s, params.max_enqueued_batches) == (
        1000,
        0.0,
        1,
    )
    assert params.execution_batch_size == 1000 and not params.allowed_batch_sizes
