"""End-to-end throughput and latency, side by side in one run on this machine:

  (a) the local model server driven directly with already-normalised tensors (the ceiling);
  (b) gateway (one worker per core) -> local model server with realistic uploads (the
      product), and the same with one gateway worker (the per-core figure k8s is sized by);
  (c) the naive baseline (bench/naive_baseline.py) with the same uploads;
  and /predict/batch of 32 images against 32 single requests.

    python -m bench.end_to_end --model-dir models/mnist [--seconds 6] [--repeats 3]

Uploads rotate between 280x280 PNG canvas drawings and 640x480 JPEG photos of dark ink on
light paper, made in code. Each cell is the median of --repeats runs of --seconds each. The
load generator shares the machine's cores with the servers. Writes
docs/benchmarks-end-to-end.md and its plot.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from bench.digits import normalised_bodies, uploads
from bench.loadgen import LoadResult, run_load
from scripts.services import ROOT, gateway_command, model_server_command, model_url, start, stop
from training.versions import existing_versions

CONCURRENCY = (1, 8, 32, 64)
SERVING_PORT = 18701
SERVING_URL = f"http://127.0.0.1:{SERVING_PORT}"
# One gateway worker per core: the gateway is the part that needs the CPU (docs/benchmarks.md).
GATEWAY_WORKERS = 2
PRODUCT = f"(b) gateway ({GATEWAY_WORKERS} workers) -> model server"


def multipart(file: tuple[str, bytes, str], field: str = "file") -> dict[str, object]:
    import aiohttp

    form = aiohttp.FormData()
    form.add_field(field, file[1], filename=file[0], content_type=file[2])
    return {"data": form}


def median_result(results: list[LoadResult]) -> LoadResult:
    results = sorted(results, key=lambda r: r.rate)
    return results[len(results) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.end_to_end", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks-end-to-end.md")
    args = parser.parse_args()
    version = existing_versions(args.model_dir)[-1]
    files = uploads()
    tensors = normalised_bodies(files)
    json_headers = {"Content-Type": "application/json"}

    processes = []
    table: dict[str, dict[int, LoadResult]] = {}
    try:
        quiet = {"TF_CPP_MIN_LOG_LEVEL": "2"}
        processes.append(
            start(
                model_server_command(args.model_dir, SERVING_PORT, "--log-level", "warning"),
                model_url(SERVING_URL),
                quiet,
                quiet=True,
            )
        )
        for port, workers in ((18702, GATEWAY_WORKERS), (18704, 1)):
            processes.append(
                start(
                    gateway_command(port, "--workers", str(workers), "--log-level", "warning"),
                    f"http://127.0.0.1:{port}/readyz",
                    {"GATEWAY_TF_SERVING_URL": SERVING_URL},
                    quiet=True,
                )
            )
        processes.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench.naive_baseline:app",
                    "--port",
                    "18703",
                    "--log-level",
                    "warning",
                ],
                "http://127.0.0.1:18703/docs",
                {**quiet, "MODEL_PATH": str(args.model_dir / str(version))},
                quiet=True,
            )
        )

        targets = {
            "(a) model server, tensors": lambda i: (
                f"{model_url(SERVING_URL)}:predict",
                {"data": tensors[i % 16], "headers": json_headers},
            ),
            PRODUCT: lambda i: (
                "http://127.0.0.1:18702/predict",
                multipart(files[i % 16]),
            ),
            "(b1) the same, 1 gateway worker": lambda i: (
                "http://127.0.0.1:18704/predict",
                multipart(files[i % 16]),
            ),
            "(c) naive Keras FastAPI": lambda i: (
                "http://127.0.0.1:18703/predict",
                multipart(files[i % 16]),
            ),
        }
        for name, make in targets.items():
            run_load(make, 8, 1.5)  # warm up
            table[name] = {}
            for concurrency in CONCURRENCY:
                runs = [run_load(make, concurrency, args.seconds) for _ in range(args.repeats)]
                table[name][concurrency] = median_result(runs)
                print(name, concurrency, f"{table[name][concurrency].rate:.0f} req/s", flush=True)

        def batch_request(i: int) -> tuple[str, dict[str, object]]:
            import aiohttp

            form = aiohttp.FormData()
            for k in range(32):
                name, data, kind = files[(i + k) % 16]
                form.add_field("files", data, filename=name, content_type=kind)
            return ("http://127.0.0.1:18702/predict/batch", {"data": form})

        batch_runs = [run_load(batch_request, 4, args.seconds) for _ in range(args.repeats)]
        batch = median_result(batch_runs)
    finally:
        stop(processes)

    cores = os.cpu_count()
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {cores} cores shared by the load generator and "
        f"all servers; medians of {args.repeats} runs of {args.seconds:.0f} s per cell.",
        "",
        "| target | concurrency | requests/s | p50 ms | p95 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, by_concurrency in table.items():
        for concurrency, r in by_concurrency.items():
            lines.append(
                f"| {name} | {concurrency} | {r.rate:.0f} | {r.p50:.2f} | "
                f"{r.percentile(95):.2f} | {r.percentile(99):.2f} | {r.errors} |"
            )
    b, a, c = (
        table[PRODUCT],
        table["(a) model server, tensors"],
        table["(c) naive Keras FastAPI"],
    )
    singles = b[32].rate
    lines += [
        "",
        f"- gateway overhead at concurrency 1: {b[1].p50 - a[1].p50:+.2f} ms p50 over (a)",
        f"- (b) / (c) at concurrency 32: {b[32].rate / c[32].rate:.1f}x",
        f"- /predict/batch of 32 images at concurrency 4: {batch.rate * 32:.0f} images/s, "
        f"{batch.rate * 32 / singles:.1f}x the images/s of single requests at concurrency 32 "
        f"({singles:.0f}/s), {batch.errors} errors",
    ]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(text)
    plot(table, args.output.with_suffix(".png"))
    return 0


def plot(table: dict[str, dict[int, LoadResult]], path: Path) -> None:
    """Throughput and p99 latency against concurrency, one line per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rate_axes, latency_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for name, by_concurrency in table.items():
        levels = list(by_concurrency)
        rate_axes.plot(levels, [r.rate for r in by_concurrency.values()], marker="o", label=name)
        latency_axes.plot(
            levels, [r.percentile(99) for r in by_concurrency.values()], marker="o", label=name
        )
    rate_axes.set(
        xscale="log", yscale="log", xlabel="concurrency", ylabel="requests/s", title="Throughput"
    )
    latency_axes.set(
        xscale="log",
        yscale="log",
        xlabel="concurrency",
        ylabel="p99 latency (ms)",
        title="Tail latency",
    )
    for axes in (rate_axes, latency_axes):
        axes.set_xticks(list(CONCURRENCY), [str(c) for c in CONCURRENCY])
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
