"""Server-side batching: concurrent requests to one signature share one model call.

While every model thread is busy, requests queue up; the next free thread takes as many
queued rows as fit in `max_batch_size`, so a busy server answers many requests per call.
A free thread waits up to `batch_timeout_s` for company only while another batch is
running, or has just been answered (its callers are about to come back): an idle server
answers at once instead of paying the timeout on every request.
"""

import asyncio
import collections
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

Tensors = dict[str, np.ndarray]
ModelCall = Callable[[Tensors], Tensors]


@dataclass(frozen=True)
class BatchingParameters:
    """The subset of TF Serving's batching_parameters the local server honours."""

    max_batch_size: int = 64
    batch_timeout_s: float = 0.0
    num_batch_threads: int = 2


class _Task:
    __slots__ = ("inputs", "rows", "future", "shapes")

    def __init__(self, inputs: Tensors, rows: int, future: asyncio.Future[Tensors]) -> None:
        self.inputs = inputs
        self.rows = rows
        self.future = future
        # Only requests whose rows have the same shapes can be concatenated.
        self.shapes = tuple(sorted((k, v.shape[1:]) for k, v in inputs.items()))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Batcher:
    """Queues requests for one model signature and runs them in batches on `executor`."""

    def __init__(
        self,
        call: ModelCall,
        params: BatchingParameters,
        executor: Executor,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._call = call
        self._params = params
        self._executor = executor
        self._on_batch = on_batch
        self._queue: collections.deque[_Task] = collections.deque()
        self._queued_rows = 0
        # While a batch waits for company: the rows it still has room for, and the future
        # that the request bringing that many is to resolve.
        self._room: tuple[int, asyncio.Future[None]] | None = None
        self._wakeup = asyncio.Event()
        self._free_threads = asyncio.Semaphore(params.num_batch_threads)
        self._running: set[asyncio.Task[None]] = set()
        self._closing = False
        self._loop_task = asyncio.get_running_loop().create_task(self._dispatch_forever())

    async def submit(self, inputs: Tensors) -> Tensors:
        """Run `inputs` (each with the batch dimension first) through the model."""
        if self._closing:
            raise RuntimeError("this batcher is closed; its servable has been unloaded")
        rows = next(iter(inputs.values())).shape[0]
        task = _Task(inputs, rows, asyncio.get_running_loop().create_future())
        self._queue.append(task)
        self._queued_rows += rows
        self._wakeup.set()
        if self._room is not None and self._queued_rows >= self._room[0]:
            _resolve(self._room[1])
        return await task.future

    def _pop(self) -> _Task:
        task = self._queue.popleft()
        self._queued_rows -= task.rows
        return task

    async def _next_task(self) -> _Task | None:
        while not self._queue:
            if self._closing:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._pop()

    async def _wait_for_rows(self, rows: int, timeout: float) -> None:
        """Until `rows` rows are queued, the timeout passes or the batcher closes: one
        future and one timer per wait, not one per arriving request."""
        loop = asyncio.get_running_loop()
        room: asyncio.Future[None] = loop.create_future()
        self._room = (rows, room)
        timer = loop.call_later(timeout, _resolve, room)
        try:
            await room
        finally:
            timer.cancel()
            self._room = None

    async def _collect(self) -> list[_Task]:
        first = await self._next_task()
        if first is None:
            return []  # closing, and nothing left to serve
        batch, rows = [first], first.rows
        limit = self._params.max_batch_size
        # Idle model: run now. Busy model (or one that has just answered a batch, whose
        # callers are coming back): a little wait fills this batch further.
        timeout = self._params.batch_timeout_s if self._running else 0.0
        deadline = time.monotonic() + timeout
        while rows < limit:
            if not self._queue:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closing:
                    break
                await self._wait_for_rows(limit - rows, remaining)
                if not self._queue:
                    break
            task = self._queue[0]
            if task.shapes != first.shapes or rows + task.rows > limit:
                break
            batch.append(self._pop())
            rows += task.rows
        return batch

    async def _dispatch_forever(self) -> None:
        while True:
            await self._free_threads.acquire()
            batch = await self._collect()
            if not batch:
                self._free_threads.release()
                return
            running = asyncio.create_task(self._run(batch))
            self._running.add(running)
            running.add_done_callback(self._running.discard)

    async def _run(self, batch: list[_Task]) -> None:
        try:
            batch = [task for task in batch if not task.future.cancelled()]
            if not batch:
                return
            if len(batch) == 1:  # nothing to join, nothing to split
                inputs = batch[0].inputs
            else:
                inputs = {
                    name: np.concatenate([task.inputs[name] for task in batch])
                    for name in batch[0].inputs
                }
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                outputs = await loop.run_in_executor(self._executor, self._call, inputs)
            except Exception as exc:
                await self._run_alone(batch, exc)
                return
            if self._on_batch is not None:
                self._on_batch(sum(task.rows for task in batch), time.perf_counter() - started)
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_result(outputs)
                return
            offset = 0
            for task in batch:
                if not task.future.done():
                    task.future.set_result(
                        {
                            name: value[offset : offset + task.rows]
                            for name, value in outputs.items()
                        }
                    )
                offset += task.rows
        finally:
            self._free_threads.release()

    async def _run_alone(self, batch: list[_Task], error: Exception) -> None:
        """After a failed batch, give each request its own call: one bad input
        (say, an image with no digit) must not fail its neighbours."""
        loop = asyncio.get_running_loop()
        for task in batch:
            if task.future.done():
                continue
            if len(batch) == 1:
                task.future.set_exception(error)
                continue
            try:
                result = await loop.run_in_executor(self._executor, self._call, task.inputs)
            except Exception as exc:
                task.future.set_exception(exc)
            else:
                task.future.set_result(result)

    async def close(self) -> None:
        """Serve every request already queued, then stop. Callers stop submitting first:
        a retired version's queue is drained, never dropped, so a swap fails no request."""
        self._closing = True
        self._wakeup.set()
        if self._room is not None:
            _resolve(self._room[1])
        await self._loop_task
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
