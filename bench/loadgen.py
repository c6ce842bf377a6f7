"""The benchmarks' one load driver: N clients, each posting its next request when the
previous answer arrives (a closed loop), for a fixed time; and the multipart bodies they post."""

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
import numpy as np

from bench.digits import Upload

Request = tuple[str, bytes, str]  # url, body, content type
Log = list[tuple[float, int, float]]  # (started, status or -1 for no answer, seconds) per request
BOUNDARY = "benchboundary7d1c"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"  # the Content-Type of `multipart`


def multipart(files: Sequence[Upload], field: str) -> bytes:
    """A multipart/form-data body with each file as a part called `field`."""
    parts = [
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{name}"\r\nContent-Type: {kind}\r\n\r\n'
        ).encode()
        + data
        + b"\r\n"
        for name, data, kind in files
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def drive(
    request: Callable[[int], Request], concurrency: int, seconds: float, timeout_s: float = 30
) -> Log:
    """Post `request(i)` for i = 0, 1, ... from `concurrency` clients until `seconds` pass."""
    log: Log = []
    deadline = time.monotonic() + seconds
    counter = itertools.count()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    ) as session:

        async def client() -> None:
            while time.monotonic() < deadline:
                url, body, content_type = request(next(counter))
                started = time.monotonic()
                try:
                    headers = {"Content-Type": content_type}
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                except (TimeoutError, aiohttp.ClientError):
                    status = -1
                log.append((started, status, time.monotonic() - started))

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return log


@dataclass(frozen=True)
class Load:
    """What one closed-loop run achieved: answers 200 per second and their latency."""

    answered: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int  # answers other than 200, and requests without an answer


def run_load(request: Callable[[int], Request], concurrency: int, seconds: float) -> Load:
    began = time.monotonic()
    log = asyncio.run(drive(request, concurrency, seconds))
    elapsed = time.monotonic() - began
    answered = [took * 1000 for _, status, took in log if status == 200]
    p50, p99 = np.percentile(answered, [50, 99]) if answered else (float("nan"),) * 2
    return Load(
        len(answered), len(answered) / elapsed, float(p50), float(p99), len(log) - len(answered)
    )
