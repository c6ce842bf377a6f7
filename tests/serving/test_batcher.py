"""The batcher on its own, with a plain Python model: what happens to queued requests
when a version is retired (its batcher closed) while requests are still arriving."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serving.batching import Batcher, BatchingParameters, Tensors

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def slow_double(inputs: Tensors) -> Tensors:
    time.sleep(0.01)
    return {"y": inputs["x"] * 2}


async def test_closing_serves_every_queued_request() -> None:
    params = BatchingParameters(max_batch_size=4, batch_timeout_s=0.005, num_batch_threads=2)
    with ThreadPoolExecutor(2) as executor:
        batcher = Batcher(slow_double, params, executor)
        values = np.arange(200, dtype=np.float32)
        requests = [
            asyncio.ensure_future(batcher.submit({"x": values[i : i + 1]})) for i in range(200)
        ]
        await asyncio.sleep(0.03)  # some batches done, some running, most still queued

        await asyncio.wait_for(batcher.close(), timeout=10)

        done, pending = await asyncio.wait(requests, timeout=5)
    assert not pending, f"{len(pending)} requests never answered"
    answers = np.concatenate([request.result()["y"] for request in requests])
    np.testing.assert_array_equal(answers, values * 2)
