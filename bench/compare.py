"""This checkout's stack under load, and against an older commit's: end-to-end uploads/s and
latency, the gateway's and the model server's CPU per request, the gateway's preprocessing.

    python -m bench.compare --model-dir models/mnist [--before REV|DIR] [--rounds 2]
        [--seconds 10] [--concurrency 32]

docs/benchmarks.md says how: REV is checked out in a temporary worktree (DIR, a checkout, is
used as it is); CPU is each server's process tree's, from /proc, per upload answered.
"""

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.digits import uploads
from bench.loadgen import MULTIPART, multipart, run_load
from scripts.services import ROOT, loopback, quiet_stack

GATEWAY_WORKERS = 2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
COLUMNS = (
    "uploads/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "gateway CPU ms/upload",
    "model server CPU ms/request",
    "preprocess ms",
)
# Runs in the checkout measured, so that its own preprocessing is timed; the PNG on stdin.
PREPROCESS_TIMER = """
import statistics, sys, time
from gateway.config import DEFAULT_MAX_IMAGE_PIXELS
from gateway.preprocessing import preprocess_upload
png, times = sys.stdin.buffer.read(), []
for _ in range(320):
    started = time.perf_counter()
    preprocess_upload(png, DEFAULT_MAX_IMAGE_PIXELS)
    times.append(time.perf_counter() - started)
print(statistics.median(times[20:]) * 1000)
"""


@dataclass(frozen=True)
class Stack:
    root: Path
    gateway_url: str
    gateway: subprocess.Popen[bytes]
    model_server: subprocess.Popen[bytes]


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int(entry.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.parent.name))
    tree, pending = [], [pid]
    while pending:
        tree.append(pending.pop())
        pending.extend(children.get(tree[-1], []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the live processes among `pids`."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


def measure(stack: Stack, png: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    body = multipart([("digit.png", png, "image/png")], "file")
    url = f"{stack.gateway_url}/predict"
    run_load(lambda _: (url, body, MULTIPART), concurrency, 1.0)  # warm up
    servers = [process_tree(stack.gateway.pid), process_tree(stack.model_server.pid)]
    before = [cpu_seconds(pids) for pids in servers]
    load = run_load(lambda _: (url, body, MULTIPART), concurrency, seconds)
    ms_per_upload = [
        (cpu_seconds(pids) - spent) * 1000 / max(load.answered, 1)
        for pids, spent in zip(servers, before, strict=True)
    ]
    timer = [sys.executable, "-c", PREPROCESS_TIMER]
    timed = subprocess.run(timer, input=png, cwd=stack.root, capture_output=True, check=True)
    figures = (load.rate, load.p50_ms, load.p99_ms, load.errors, *ms_per_upload)
    return dict(zip(COLUMNS, (*figures, float(timed.stdout)), strict=True))


@contextlib.contextmanager
def checkout(before: str) -> Iterator[Path]:
    """`before` if it is a folder, else that commit checked out in a temporary worktree."""
    if Path(before).is_dir():
        yield Path(before).resolve()
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-before-"))
    git = ["git", "-C", str(ROOT), "worktree"]
    subprocess.run([*git, "add", "--detach", str(folder), before], check=True)
    try:
        yield folder
    finally:
        subprocess.run([*git, "remove", "--force", str(folder)], check=False)


def print_table(results: dict[str, list[dict[str, float]]]) -> None:
    print(f"\n{os.cpu_count()} cores shared by the servers and the load generator\n")
    print("| checkout | round | " + " | ".join(COLUMNS) + " |")
    print("| --- | ---: |" + " ---: |" * len(COLUMNS))
    medians = {
        name: {column: statistics.median(run[column] for run in runs) for column in COLUMNS}
        for name, runs in results.items()
    }
    for name, runs in results.items():
        for index, run in enumerate([*runs, medians[name]]):
            label = str(index + 1) if index < len(runs) else "median"
            cells = (f"{run[c]:.0f}" if run[c] >= 100 else f"{run[c]:.3g}" for c in COLUMNS)
            print(f"| {name} | {label} | " + " | ".join(cells) + " |")
    if "before" in medians:
        this, before = medians["this"], medians["before"]
        ratios = [f"{this[c] / before[c]:.2f}" if before[c] else "" for c in COLUMNS]
        print("| this / before | medians | " + " | ".join(ratios) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--before", metavar="REV|DIR", help="an older commit, or its checkout")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    png = uploads()[0][1]  # a 280x280 PNG canvas drawing
    with contextlib.ExitStack() as cleanup:
        roots = {"this": ROOT}
        if args.before:
            roots = {"before": cleanup.enter_context(checkout(args.before)), **roots}
        stacks = {}
        for index, (name, root) in enumerate(roots.items()):
            port = 18811 + 10 * index
            servers = quiet_stack(args.model_dir.resolve(), port, port + 1, root, GATEWAY_WORKERS)
            model_server, gateway = cleanup.enter_context(servers)  # before the checkout goes
            stacks[name] = Stack(root, loopback(port + 1), gateway, model_server)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in stacks}
        for round_ in range(args.rounds):
            # Turns swap every round, so that a drift of the machine's speed favours neither.
            for name in list(stacks)[:: -1 if round_ % 2 else 1]:
                run = measure(stacks[name], png, args.concurrency, args.seconds)
                results[name].append(run)
                print(f"round {round_ + 1}, {name}: {run['uploads/s']:.0f} uploads/s", flush=True)
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
