"""Recognition through the real stack: accuracy and refusals per kind of upload.

Starts the local model server on a published model and the gateway in front of it, then
sends every upload of bench/recognition_sets.py one by one, through the gateway's /predict
and straight to the model server's `predict_image_bytes` signature, and prints one row per
kind: how many were refused, and of legible digits how many were answered right.

    python -m bench.recognition --data mnist.npz --model-dir models/mnist [--per-kind 1000]
        [--split test|tune] [--floors] [--servers-root DIR]

`--floors` exits 1 when a kind falls below the floors in FLOORS (CI runs it). With
`--servers-root`, both servers run from another checkout (the "before" of a change).
"""

import argparse
import asyncio
import base64
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
from PIL import Image

from bench.digits import encode
from bench.recognition_sets import (
    HELD_OUT,
    SEEDS,
    Upload,
    legible_uploads,
    mnist_split,
    other_writers,
    refusable_uploads,
)
from contract import OUTPUT_REFUSAL, SIGNATURE_IMAGE_BYTES
from scripts.services import loopback, model_url, quiet_stack

# CI fails below these (share answered right for legible kinds, share refused for the rest):
# tripwires for regressions, set under the measured figures (docs/recognition.md) by more
# than twice the sampling noise of CI's 200 uploads per kind (100 per non-digit kind).
FLOORS = {
    "right": 0.94,
    "held_out_right": 0.82,
    "refused": 0.82,
    "mnist_right": 0.975,
    # The gateway and the in-graph signature: the same digit or the same refusal (a contract).
    "agree": 0.995,
}
CONCURRENCY = 8


def mnist_pngs(images: np.ndarray, labels: np.ndarray, count: int) -> list[Upload]:
    return [
        Upload("mnist-png", encode(Image.fromarray(image)), int(label))
        for image, label in zip(images[:count], labels[:count], strict=True)
    ]


async def answered(client: httpx.AsyncClient, url: str, data: bytes) -> dict[str, Any] | None:
    """The gateway's answer to the upload posted to `url`: its body, or None when refused (422).

    Raises:
        RuntimeError: any other status, quoting the body.
    """
    response = await client.post(url, files={"file": ("upload", data)})
    if response.status_code == 200:
        return cast(dict[str, Any], response.json())
    if response.status_code != 422:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text}")
    return None


async def classify_all(
    uploads: list[Upload], gateway_url: str, serving_url: str
) -> dict[str, list[int | None]]:
    """Each upload's digit (None when refused) through the gateway and through the graph."""
    n = len(uploads)
    answers: dict[str, list[int | None]] = {"gateway": [None] * n, "graph": [None] * n}
    limit = asyncio.Semaphore(CONCURRENCY)

    async with httpx.AsyncClient(timeout=60) as client:

        async def one(index: int, upload: Upload) -> None:
            async with limit:
                answer = await answered(client, f"{gateway_url}/predict", upload.data)
                answers["gateway"][index] = None if answer is None else answer["predicted_digit"]
                body = {
                    "signature_name": SIGNATURE_IMAGE_BYTES,
                    "instances": [{"b64": base64.b64encode(upload.data).decode()}],
                }
                response = await client.post(f"{model_url(serving_url)}:predict", json=body)
                if response.status_code == 200:
                    (prediction,) = response.json()["predictions"]
                    if not prediction.get(OUTPUT_REFUSAL):  # a refusal of its own row
                        answers["graph"][index] = prediction["digit"]
                elif "No digit found" not in response.text:  # models exported before refusals
                    raise RuntimeError(
                        f"model server answered {response.status_code}: {response.text}"
                    )

        await asyncio.gather(*(one(i, u) for i, u in enumerate(uploads)))
    return answers


def legible_floor(kind: str) -> float:
    if kind in HELD_OUT:
        return FLOORS["held_out_right"]
    return FLOORS["mnist_right" if kind == "mnist-png" else "right"]


def counted(
    uploads: list[Upload], answers: dict[str, list[int | None]]
) -> dict[str, dict[str, Counter[str]]]:
    """kind -> path (gateway, graph) -> uploads, refused, right, and same answer on both."""
    rows: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for index, upload in enumerate(uploads):
        for path, digits in answers.items():
            counts = rows[upload.kind][path]
            counts["n"] += 1
            counts["same"] += answers["gateway"][index] == answers["graph"][index]
            if digits[index] is None:
                counts["refused"] += 1
            elif digits[index] == upload.label:
                counts["right"] += 1
    return rows


def share(counts: Counter[str], key: str) -> str:
    return f"{counts[key] / counts['n']:.2%}"


def table(uploads: list[Upload], answers: dict[str, list[int | None]]) -> tuple[str, list[str]]:
    """The printed table, and the kinds below their floors through the gateway."""
    lines = [
        "| kind | uploads | gateway: refused | gateway: right | graph: refused | graph: right "
        "| agree |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    failures = []
    labels = {upload.kind: upload.label for upload in uploads}
    totals: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}  # legible or not
    for kind, paths in counted(uploads, answers).items():
        gateway, graph = paths["gateway"], paths["graph"]
        legible = labels[kind] is not None
        if kind not in HELD_OUT:
            totals[legible].update(gateway)
        name = f"{kind} (held out)" if kind in HELD_OUT else kind
        right = (share(gateway, "right"), share(graph, "right")) if legible else ("", "")
        lines.append(
            f"| {name} | {gateway['n']} | {share(gateway, 'refused')} | {right[0]} | "
            f"{share(graph, 'refused')} | {right[1]} | {share(gateway, 'same')} |"
        )
        if legible and gateway["right"] / gateway["n"] < (floor := legible_floor(kind)):
            failures.append(f"{kind}: {share(gateway, 'right')} right < {floor:.0%}")
        elif not legible and gateway["refused"] / gateway["n"] < FLOORS["refused"]:
            failures.append(f"{kind}: {share(gateway, 'refused')} refused")
    legible_ones, others = totals[True], totals[False]
    agree = sum(a == b for a, b in zip(answers["gateway"], answers["graph"], strict=True))
    lines += [
        "",
        f"- legible digits refused through the gateway: {legible_ones['refused']}/"
        f"{legible_ones['n']} ({share(legible_ones, 'refused')}; held-out kinds not counted)",
        f"- not one digit, refused through the gateway: {others['refused']}/{others['n']} "
        f"({share(others, 'refused')})",
        f"- gateway and in-graph signature give the same answer (digit or refusal): "
        f"{agree}/{len(uploads)} ({agree / len(uploads):.2%})",
    ]
    if agree / len(uploads) < FLOORS["agree"]:
        failures.append(
            f"gateway and graph agree on {agree / len(uploads):.2%} < {FLOORS['agree']:.1%}"
        )
    return "\n".join(lines), failures


def arguments(module: str, doc: str, per_kind: int, port: int) -> argparse.ArgumentParser:
    """The options of the benchmarks that start the stack on sets of uploads; the model
    server on `port`, the gateway on `port` + 1."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--per-kind", type=int, default=per_kind)
    parser.add_argument("--split", choices=("test", "tune"), default="test")
    parser.add_argument("--floors", action="store_true", help="exit 1 below the floors")
    parser.add_argument("--serving-port", type=int, default=port)
    parser.add_argument("--gateway-port", type=int, default=port + 1)
    return parser


def verdict(floors: bool, failures: list[str]) -> int:
    """The exit code: 1 when the floors count and some fell short (named on stderr)."""
    if floors and failures:
        print("FAIL: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = arguments("bench.recognition", __doc__, per_kind=1000, port=18511)
    parser.add_argument("--servers-root", type=Path, help="run both servers from this checkout")
    args = parser.parse_args()

    images, labels = mnist_split(args.data, args.split)
    seed = SEEDS[args.split]
    uploads = [
        *mnist_pngs(images, labels, args.per_kind),
        *legible_uploads(images, labels, args.per_kind, seed),
        *(other_writers() if args.split == "test" else []),
        *refusable_uploads(images, max(100, args.per_kind // 4), seed),
    ]
    print(f"{len(uploads)} uploads made", flush=True)

    with quiet_stack(args.model_dir, args.serving_port, args.gateway_port, args.servers_root):
        answers = asyncio.run(
            classify_all(uploads, loopback(args.gateway_port), loopback(args.serving_port))
        )

    text, failures = table(uploads, answers)
    print(
        f"\nRecognition on the {args.split} split, {os.cpu_count()} cores, model "
        f"{args.model_dir}:\n\n{text}"
    )
    return verdict(args.floors, failures)


if __name__ == "__main__":
    sys.exit(main())
