"""Server-side batching with TF Serving's rules: one queue of batches per signature.

TF Serving hands each request (a task) to TensorFlow's SharedBatchScheduler
(tensorflow/core/kernels/batching_util/shared_batch_scheduler.h, in the TensorFlow that
TF Serving 2.20.0 builds with). The rules a caller can see are kept here:

- a task of more rows than `max_batch_size` is refused (INVALID_ARGUMENT), whether or not
  large batches are split;
- the queue is a line of batches ending in the open one; a task joins the open batch when it
  fits in `max_execution_batch_size` rows, else it closes that batch and opens the next, or
  with `enable_large_batch_splitting` is cut to fill the open batch and the ones after it;
- a task the queue has no room for is refused with UNAVAILABLE (`max_enqueued_batches`);
- a batch runs when it is full, closed, or `batch_timeout_micros` after its first task came;
  it is padded to the first `allowed_batch_sizes` entry that holds it, with copies of the
  first row of its last task; a model error fails every request in the batch.

One difference, in latency only: an idle queue (no batch of it running or just answered)
runs its open batch at once instead of waiting out the timeout for company that is not
coming.
"""

import asyncio
import collections
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

import numpy as np

from serving.errors import ServingError, invalid_argument

Tensors = dict[str, np.ndarray]
ModelCall = Callable[[Tensors], Tensors]


@dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's BatchingParameters, with its defaults for fields a file leaves out
    (shared_batch_scheduler.h's QueueOptions; bundle_factory_util.h, GetQueueOptions)."""

    max_batch_size: int = 1000
    batch_timeout_s: float = 0.0
    max_enqueued_batches: int = 10
    # MaxParallelism(): one thread per core.
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple[int, ...] = ()
    enable_large_batch_splitting: bool = False
    # None: max_batch_size. Used only when large batches are split.
    max_execution_batch_size: int | None = None

    @property
    def execution_batch_size(self) -> int:
        """The rows a batch runs with at most."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size is not None:
            return self.max_execution_batch_size
        return self.max_batch_size

    def checked(self) -> "BatchingParameters":
        """These parameters as TF Serving takes them, or its refusal.

        TF Serving checks them when it creates the scheduler and each model's queues
        (SharedBatchScheduler::Create and AddQueue; WrapSessionForBatching for
        allowed_batch_sizes): a failure there fails the model's load and so the server's
        start. Its words are kept, in a ValueError.
        """
        refusal = self._refusal()
        if refusal:
            raise ValueError(f"INVALID_ARGUMENT: {refusal}")
        if self.max_enqueued_batches == 0 and not self.enable_large_batch_splitting:
            # AddQueue's rewrite, kept there for old low-traffic models.
            return replace(self, max_enqueued_batches=1)
        return self

    def _refusal(self) -> str | None:
        if self.num_batch_threads < 1:
            return f"num_batch_threads must be positive; was {self.num_batch_threads}"
        allowed = self.allowed_batch_sizes
        if allowed and allowed[-1] != self.max_batch_size:
            return (
                "Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                f"{allowed[-1]}; expected {self.max_batch_size}"
            )
        if self.max_batch_size <= 0:
            return f"input_batch_size_limit must be positive; was {self.max_batch_size}"
        if self.batch_timeout_s < 0:
            micros = round(self.batch_timeout_s * 1e6)
            return f"batch_timeout_micros must be non-negative; was {micros}"
        splitting = self.enable_large_batch_splitting
        if self.max_enqueued_batches < 0 or (self.max_enqueued_batches == 0 and splitting):
            return f"max_enqueued_batches must be positive; was {self.max_enqueued_batches}"
        if splitting and self.max_batch_size < self.execution_batch_size:
            return (
                "When enable_large_batch_splitting is true, input_batch_size_limit must be "
                f"greater than or equal to max_execution_batch_size; was {self.max_batch_size}"
                f" < {self.execution_batch_size}"
            )
        return None


class _Request:
    """One submitted task: its future, and the outputs of its pieces as they come back."""

    __slots__ = ("future", "outputs", "missing")

    def __init__(self, future: asyncio.Future[Tensors], pieces: int) -> None:
        self.future = future
        self.outputs: list[Tensors | None] = [None] * pieces
        self.missing = pieces

    def answer(self, piece: int, outputs: Tensors) -> None:
        self.outputs[piece] = outputs
        self.missing -= 1
        if self.missing or self.future.done():
            return
        if len(self.outputs) == 1:
            self.future.set_result(outputs)
            return
        parts: list[Tensors] = self.outputs  # type: ignore[assignment]
        self.future.set_result(
            {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        )

    def fail(self, error: BaseException) -> None:
        if not self.future.done():  # the first error is the request's
            self.future.set_exception(error)


@dataclass(slots=True)
class _Piece:
    """A task, or the part of a split task that went into one batch."""

    request: _Request
    index: int
    inputs: Tensors
    rows: int


class _Batch:
    __slots__ = ("pieces", "rows", "opened")

    def __init__(self) -> None:
        self.pieces: list[_Piece] = []
        self.rows = 0
        self.opened = 0.0  # when its first piece came (the timeout counts from there)

    def add(self, piece: _Piece) -> None:
        if not self.pieces:
            self.opened = time.monotonic()
        self.pieces.append(piece)
        self.rows += piece.rows


class Batcher:
    """The queue of one model signature; runs its batches on `executor`."""

    def __init__(
        self,
        call: ModelCall,
        params: BatchingParameters,
        executor: Executor,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._call = call
        self._params = params
        self._limit = params.execution_batch_size
        self._executor = executor
        self._on_batch = on_batch
        # The batches waiting to run; the last one is open, and there is always one.
        self._batches: collections.deque[_Batch] = collections.deque([_Batch()])
        self._wakeup: asyncio.Future[None] | None = None
        self._free_threads = asyncio.Semaphore(params.num_batch_threads)
        self._running: set[asyncio.Task[None]] = set()
        self._closing = False
        self._loop_task = asyncio.get_running_loop().create_task(self._dispatch_forever())

    async def submit(self, inputs: Tensors) -> Tensors:
        """Run `inputs` (each with the batch dimension first) through the model; a
        ServingError when the queue refuses them or the batch they ran in failed."""
        if self._closing:
            raise RuntimeError("this batcher is closed; its servable has been unloaded")
        rows = next(iter(inputs.values())).shape[0]
        loop = asyncio.get_running_loop()
        if rows == 0:  # nothing to batch; TF Serving would leave it waiting in the queue
            return await loop.run_in_executor(self._executor, self._call, inputs)
        self._check_room(rows)
        sizes = self._piece_sizes(rows)
        request = _Request(loop.create_future(), len(sizes))
        start = 0
        for index, size in enumerate(sizes):
            if self._batches[-1].rows + size > self._limit:
                self._batches.append(_Batch())  # closes the open batch: it may run now
            part = {name: value[start : start + size] for name, value in inputs.items()}
            self._batches[-1].add(_Piece(request, index, part, size))
            start += size
        front = self._batches[0]
        if len(self._batches) > 1 or front.rows >= self._limit or front.rows == rows:
            self._wake()  # a batch can run, or the queue was empty
        return await request.future

    def _check_room(self, rows: int) -> None:
        """ValidateBatchTaskQueueCapacity: the task's size, then the queue's room."""
        params = self._params
        if rows > params.max_batch_size:
            raise invalid_argument(
                f"Task size {rows} is larger than maximum input batch size {params.max_batch_size}"
            )
        batches, open_rows = len(self._batches), self._batches[-1].rows
        full = "The batch scheduling queue to which this task was submitted is full; "
        if params.enable_large_batch_splitting:
            capacity = (params.max_enqueued_batches - batches) * self._limit
            capacity += self._limit - open_rows
            if rows > capacity:
                raise ServingError(
                    "UNAVAILABLE",
                    f"{full}task size is {rows} but scheduling capacity is only {capacity} "
                    f"(num_enqueued_batches={batches}, max_enqueued_batches="
                    f"{params.max_enqueued_batches}, open_batch_size={open_rows}, "
                    f"max_execution_batch_size={self._limit})",
                )
        elif open_rows + rows > params.max_batch_size and batches >= params.max_enqueued_batches:
            raise ServingError(
                "UNAVAILABLE",
                f"{full}currently {batches} batches enqueued and max_enqueued_batches is "
                f"{params.max_enqueued_batches}",
            )

    def _piece_sizes(self, rows: int) -> list[int]:
        """How a task is cut: whole when it fits the open batch or splitting is off; else
        the open batch's room first, then full batches, then the rest (InputSplitMetadata)."""
        room = self._limit - self._batches[-1].rows
        if rows <= room or not self._params.enable_large_batch_splitting:
            return [rows]
        sizes = [room] if room > 0 else []
        left = rows - room
        sizes += [self._limit] * (left // self._limit)
        if left % self._limit:
            sizes.append(left % self._limit)
        return sizes

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _sleep(self, timeout: float | None) -> None:
        """Until a submit or close wakes the dispatcher, or `timeout` passes."""
        loop = asyncio.get_running_loop()
        self._wakeup = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, self._wake)
        try:
            await self._wakeup
        finally:
            if timer is not None:
                timer.cancel()
            self._wakeup = None

    async def _next_batch(self) -> _Batch | None:
        """The front batch once it may run (ScheduleBatch); None when closed and drained."""
        while True:
            front = self._batches[0]
            if len(self._batches) > 1:  # closed: runs at once
                return self._batches.popleft()
            if not front.rows:
                if self._closing:
                    return None
                await self._sleep(None)
                continue
            # Busy, or just answered (its callers are coming back): the timeout applies.
            waited = time.monotonic() - front.opened
            left = self._params.batch_timeout_s - waited if self._running else 0.0
            if self._closing or front.rows >= self._limit or left <= 0:
                self._batches[0] = _Batch()
                return front
            await self._sleep(left)

    async def _dispatch_forever(self) -> None:
        while True:
            await self._free_threads.acquire()
            batch = await self._next_batch()
            if batch is None:
                self._free_threads.release()
                return
            running = asyncio.create_task(self._run(batch))
            self._running.add(running)
            running.add_done_callback(self._running.discard)

    def _joined(self, batch: _Batch) -> tuple[Tensors, int]:
        """The batch's inputs as one tensor each, padded to an allowed size; its rows."""
        pieces = batch.pieces
        if len(pieces) == 1 and not self._params.allowed_batch_sizes:
            return pieces[0].inputs, batch.rows
        size = next((s for s in self._params.allowed_batch_sizes if s >= batch.rows), batch.rows)
        joined = {}
        for name in pieces[0].inputs:
            values = [piece.inputs[name] for piece in pieces]
            if any(value.shape[1:] != values[0].shape[1:] for value in values):
                raise ServingError(
                    "FAILED_PRECONDITION",
                    f"Tensors with name '{name}' from different "
                    "tasks have different shapes and padding is turned off. Set "
                    "pad_variable_length_inputs to true, or ensure that all tensors with the "
                    "same name have equal dimensions starting with the first dim.",
                )
            if size > batch.rows:
                values.append(np.repeat(values[-1][:1], size - batch.rows, axis=0))
            joined[name] = values[0] if len(values) == 1 else np.concatenate(values)
        return joined, size

    async def _run(self, batch: _Batch) -> None:
        try:
            try:
                inputs, size = self._joined(batch)
                outputs = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._call, inputs
                )
            except Exception as exc:  # the whole batch fails, as in TF Serving
                for piece in batch.pieces:
                    piece.request.fail(exc)
                return
            if self._on_batch is not None:
                self._on_batch(size)
            if len(batch.pieces) == 1 and size == batch.rows:
                piece = batch.pieces[0]
                piece.request.answer(piece.index, outputs)
                return
            offset = 0
            for piece in batch.pieces:
                end = offset + piece.rows
                piece.request.answer(
                    piece.index, {name: value[offset:end] for name, value in outputs.items()}
                )
                offset = end
        finally:
            self._free_threads.release()

    async def close(self) -> None:
        """Serve every request already queued, then stop. Callers stop submitting first:
        a retired version's queue is drained, never dropped, so a swap fails no request."""
        self._closing = True
        self._wake()
        await self._loop_task
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
