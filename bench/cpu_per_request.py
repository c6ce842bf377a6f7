"""CPU per request, the figure that sets throughput on a small machine: wrk drives each
server at a fixed concurrency, and each server's CPU time (read from /proc, its worker
processes included) is divided by the requests it answered. All rows come from one run.

    python -m bench.cpu_per_request --model-dir models/mnist [--seconds 10] [--only gateway]
        [--before-root DIR] [--profile DIR]

Rows: (a) the local model server alone, with the gateway's upstream bodies for one digit;
(b) gateway (2 workers, as `make run` starts it) -> model server, with a 280x280 PNG upload,
and /predict/batch of 32 of them, from this checkout and, with `--before-root`, as another
checkout ran it; (c) the naive baseline (bench/naive_baseline.py). Then, for each gateway,
where its CPU per upload goes: the steps timed in one process (bench/gateway_steps.py), and
what the HTTP server and sockets add. wrk
shares the machine's cores with the servers; its own CPU is reported too, and so are the
machine's idle time and the time a virtual machine's hypervisor took away (steal) during
each run.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.digits import MULTIPART, multipart, uploads
from bench.gateway_steps import print_steps, steps
from contract import SIGNATURE_IMAGE, SIGNATURE_PIXELS
from gateway.config import DEFAULT_MAX_IMAGE_PIXELS
from gateway.preprocessing import preprocess_upload
from gateway.serving_client import floats_body, pixels_body
from scripts.services import gateway_command, model_server_command, model_url, start, stop
from training.versions import existing_versions

MODEL_SERVER_PORT, GATEWAY_PORT, NAIVE_PORT = 18811, 18812, 18813
GATEWAY_WORKERS = 2
CONCURRENCY = (1, 32)
BATCH = 32
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
JSON = "application/json"

# wrk reads the body and headers from files, and prints its summary as one JSON line.
WRK_SCRIPT = """
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    body: bytes
    content_type: str
    servers: dict[str, int]  # component -> pid whose process tree serves it
    images_per_request: int = 1
    concurrencies: tuple[int, ...] = CONCURRENCY


@dataclass(frozen=True)
class Row:
    target: Target
    concurrency: int
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_ms: dict[str, float]  # component -> CPU ms per request
    wrk_cpu_ms: float
    idle: float  # share of the machine's CPU time idle during the run
    steal: float  # share taken by the hypervisor for other guests (a VM's lost time)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def machine_times() -> list[int]:
    """The machine's CPU time by kind (user, nice, system, idle, iowait, irq, softirq, steal)."""
    return [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of live processes, in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def start_profilers(target: Target, seconds: float, folder: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy on each server (workers included) for the run: where its CPU goes."""
    slug = "".join(c if c.isalnum() else "-" for c in target.name)
    return [
        subprocess.Popen(
            [
                shutil.which("py-spy", path=Path(sys.executable).parent) or "py-spy",
                "record",
                "--format",
                "raw",
                "--rate",
                "200",
                "--subprocesses",
                "--nonblocking",
                "--duration",
                f"{seconds:.0f}",
                "--output",
                str(folder / f"{slug}-{component.replace(' ', '-')}.txt"),
                "--pid",
                str(pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for component, pid in target.servers.items()
    ]


def summarise_profile(path: Path, top: int = 15) -> str:
    """The functions holding the largest shares of a py-spy raw profile's samples."""
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        for frame in set(stack.split(";")):
            name, _, where = frame.partition(" (")
            module = where.split(":")[0].split("site-packages/")[-1]
            key = f"{name} ({module})"
            inclusive[key] = inclusive.get(key, 0) + int(count)
    ranked = sorted(inclusive.items(), key=lambda item: -item[1])
    # The outer frames (event loop, server, middleware) hold nearly everything: skip to where
    # the shares start to split.
    split = [(name, n) for name, n in ranked if n < 0.7 * total][:top]
    lines = [f"{path.name}: {total} samples"]
    lines += [f"  {n / max(total, 1):6.1%}  {name}" for name, n in split]
    return "\n".join(lines)


def drive(
    target: Target,
    concurrency: int,
    seconds: float,
    scratch: Path,
    profile_dir: Path | None = None,
) -> Row:
    body_file = scratch / "body"
    body_file.write_bytes(target.body)
    script = scratch / "bench.lua"
    script.write_text(WRK_SCRIPT)
    trees = {component: process_tree(pid) for component, pid in target.servers.items()}
    before = {component: cpu_seconds(pids) for component, pids in trees.items()}
    profilers = start_profilers(target, seconds, profile_dir) if profile_dir else []
    machine_before = machine_times()
    wrk_started = os.times()
    output = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            target.url,
        ],
        env={**os.environ, "BENCH_BODY": str(body_file), "BENCH_CONTENT_TYPE": target.content_type},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wrk_finished = os.times()
    machine = [
        after - before for after, before in zip(machine_times(), machine_before, strict=True)
    ]
    for profiler in profilers:
        profiler.wait()
    summary = json.loads(output.split("BENCH ", 1)[1].splitlines()[0])
    requests = max(summary["requests"], 1)
    wrk_cpu = (wrk_finished.children_user - wrk_started.children_user) + (
        wrk_finished.children_system - wrk_started.children_system
    )
    return Row(
        target,
        concurrency,
        summary["requests"],
        summary["duration_us"] / 1e6,
        summary["errors"],
        summary["p50_us"] / 1000,
        summary["p99_us"] / 1000,
        {
            component: (cpu_seconds(pids) - before[component]) * 1000 / requests
            for component, pids in trees.items()
        },
        wrk_cpu * 1000 / requests,
        machine[3] / max(sum(machine), 1),
        machine[7] / max(sum(machine), 1),
    )


def upstream_bodies(png: bytes) -> dict[str, bytes]:
    """The model server's request bodies for one digit, as the gateway builds them."""
    image = preprocess_upload(png, DEFAULT_MAX_IMAGE_PIXELS)[None]
    return {
        f"JSON floats ({SIGNATURE_IMAGE})": floats_body(image),
        f"b64 pixels ({SIGNATURE_PIXELS})": pixels_body(image),
    }


def has_signature(body: bytes) -> bool:
    request = urllib.request.Request(
        f"{model_url(f'http://127.0.0.1:{MODEL_SERVER_PORT}')}:predict", data=body
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def print_table(rows: list[Row]) -> None:
    components = sorted({component for row in rows for component in row.cpu_ms})
    header = ["path", "c", "req/s", "images/s", "p50 ms", "p99 ms", "errors"]
    header += [f"CPU ms/request: {component}" for component in components]
    header += ["wrk CPU ms/req", "machine idle", "steal"]
    print(f"{os.cpu_count()} cores; one run; CPU from /proc (user + system) / requests answered\n")
    print("| " + " | ".join(header) + " |")
    print("| --- |" + " ---: |" * (len(header) - 1))
    for row in rows:
        cells = [
            row.target.name,
            str(row.concurrency),
            f"{row.rate:,.0f}",
            f"{row.rate * row.target.images_per_request:,.0f}",
            f"{row.p50_ms:.2f}",
            f"{row.p99_ms:.2f}",
            str(row.errors),
        ]
        cells += [
            f"{row.cpu_ms[component]:.3f}" if component in row.cpu_ms else ""
            for component in components
        ]
        cells += [f"{row.wrk_cpu_ms:.3f}", f"{row.idle:.0%}", f"{row.steal:.0%}"]
        print("| " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--only",
        choices=("model-server", "gateway", "naive"),
        action="append",
        help="Measure only these paths (repeatable); default all.",
    )
    parser.add_argument(
        "--before-root",
        type=Path,
        metavar="DIR",
        help="also run the gateway from this checkout (the before of a change), as it ran there",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="After measuring, run each path once more at concurrency 32 under py-spy "
        "(a separate run: the profiler's own cost stays out of the table) and write its "
        "raw profiles to DIR",
    )
    args = parser.parse_args()
    only = set(args.only or ("model-server", "gateway", "naive"))
    png = uploads()[0][1]  # a 280x280 PNG canvas drawing
    processes: list[subprocess.Popen[bytes]] = []
    rows: list[Row] = []
    try:
        targets = start_targets(args, only, png, processes)
        with tempfile.TemporaryDirectory() as scratch:
            for target in targets:
                for concurrency in target.concurrencies:
                    drive(target, concurrency, 2, Path(scratch))  # warm up
                    time.sleep(0.5)
                    rows.append(drive(target, concurrency, args.seconds, Path(scratch)))
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                for target in targets:
                    drive(target, max(CONCURRENCY), args.seconds, Path(scratch), args.profile)
    finally:
        stop(processes)
    print_table(rows)
    if "gateway" in only:
        print_breakdown(rows)
    if args.profile:
        for path in sorted(args.profile.glob("*.txt")):
            print("\n" + summarise_profile(path))
    return 0


def start_targets(
    args: argparse.Namespace, only: set[str], png: bytes, processes: list[subprocess.Popen[bytes]]
) -> list[Target]:
    """Start the servers `only` names (each appended to `processes` at once, so that a later
    failure still stops it) and return what to drive."""
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    model_dir = args.model_dir.resolve()
    model_server = start(
        model_server_command(model_dir, MODEL_SERVER_PORT, "--log-level", "warning"),
        model_url(f"http://127.0.0.1:{MODEL_SERVER_PORT}"),
        quiet,
        quiet=True,
    )
    processes.append(model_server)
    targets: list[Target] = []
    if "model-server" in only:
        for name, body in upstream_bodies(png).items():
            if has_signature(body):
                url = f"{model_url(f'http://127.0.0.1:{MODEL_SERVER_PORT}')}:predict"
                servers = {"model server": model_server.pid}
                targets.append(Target(f"(a) model server alone, {name}", url, body, JSON, servers))
    if "gateway" in only:
        gateways: list[tuple[str, Path | None]] = [("this checkout", None)]
        if args.before_root:
            gateways.insert(0, ("before", args.before_root.resolve()))
        for index, (name, root) in enumerate(gateways):
            port = GATEWAY_PORT + 10 * index
            gateway = start(
                gateway_command(port, "--workers", str(GATEWAY_WORKERS), "--log-level", "warning"),
                f"http://127.0.0.1:{port}/readyz",
                {"GATEWAY_TF_SERVING_URL": f"http://127.0.0.1:{MODEL_SERVER_PORT}"},
                quiet=True,
                cwd=root,
            )
            processes.append(gateway)
            targets += gateway_targets(name, port, png, gateway.pid, model_server.pid)
    if "naive" in only:
        naive = start_naive(model_dir, quiet)
        processes.append(naive)
        targets.append(
            Target(
                "(c) naive baseline, 280x280 PNG",
                f"http://127.0.0.1:{NAIVE_PORT}/predict",
                multipart([png], "file"),
                MULTIPART,
                {"naive": naive.pid},
            )
        )
    return targets


def gateway_targets(
    checkout: str, port: int, png: bytes, gateway_pid: int, model_server_pid: int
) -> list[Target]:
    servers = {"gateway": gateway_pid, "model server": model_server_pid}
    return [
        Target(
            f"(b) gateway [{checkout}] -> model server, 280x280 PNG",
            f"http://127.0.0.1:{port}/predict",
            multipart([png], "file"),
            MULTIPART,
            servers,
        ),
        Target(
            f"(b) gateway [{checkout}] /predict/batch of {BATCH} PNGs",
            f"http://127.0.0.1:{port}/predict/batch",
            multipart([png] * BATCH, "files"),
            MULTIPART,
            servers,
            images_per_request=BATCH,
            concurrencies=(4,),
        ),
    ]


def start_naive(model_dir: Path, quiet: dict[str, str]) -> subprocess.Popen[bytes]:
    version = existing_versions(model_dir)[-1]
    return start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.naive_baseline:app",
            "--port",
            str(NAIVE_PORT),
            "--log-level",
            "warning",
        ],
        f"http://127.0.0.1:{NAIVE_PORT}/docs",
        {**quiet, "MODEL_PATH": str(model_dir / str(version))},
        quiet=True,
    )


def print_breakdown(rows: list[Row]) -> None:
    """Where a served upload's gateway CPU goes: the steps measured in one process
    (bench/gateway_steps.py, this checkout's code), and the rest, at c=32."""
    found = steps(uploads()[0][1], runs=2000)
    for row in rows:
        name = row.target.name
        if name.startswith("(b) gateway [this checkout] ->"):
            if row.concurrency == max(CONCURRENCY):
                print(f"\n{name}, c={row.concurrency}: {os.cpu_count()} cores, the same run\n")
                print_steps(found, row.cpu_ms["gateway"])


if __name__ == "__main__":
    raise SystemExit(main())
