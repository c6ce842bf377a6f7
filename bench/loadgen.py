"""A small closed-loop HTTP load generator: N concurrent clients, each sending its next
request when the previous answer arrives, for a fixed time. Shared by the benchmarks."""

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

RequestFactory = Callable[[int], tuple[str, dict[str, object]]]  # i -> (url, aiohttp kwargs)


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    seconds: float
    requests: int
    errors: int
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


async def _run(make_request: RequestFactory, concurrency: int, seconds: float) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    counter = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal errors, counter
            while time.perf_counter() < deadline:
                counter += 1
                url, options = make_request(counter)
                started = time.perf_counter()
                try:
                    async with session.post(url, **options) as response:  # type: ignore[arg-type]
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(concurrency, elapsed, len(latencies) + errors, errors, latencies)


def run_load(make_request: RequestFactory, concurrency: int, seconds: float) -> LoadResult:
    """Drive the target for `seconds` with `concurrency` clients (bounded in time and count)."""
    return asyncio.run(_run(make_request, concurrency, seconds))


def table(title: str, rows: list[tuple[str, LoadResult]]) -> str:
    header = ("target", "conc", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors")
    lines = [title, f"{header[0]:<28}" + "".join(f" {name:>8}" for name in header[1:])]
    for name, result in rows:
        lines.append(
            f"{name:<28} {result.concurrency:>8} {result.rate:>8.0f} {result.p50:>8.2f} "
            f"{result.percentile(95):>8.2f} {result.percentile(99):>8.2f} {result.errors:>8}"
        )
    return "\n".join(lines)
