"""/read through the real stack: numbers read whole, non-numbers refused, one digit read as
/predict reads it, the number's confidence calibrated, and /read's CPU against /predict's.

    python -m bench.reading --data mnist.npz --model-dir models/mnist [--per-kind 500]
        [--split test|tune] [--floors] [--picture PNG]

Starts the local model server and the gateway as bench.recognition does, sends every upload
of recognition_sets.number_uploads to /read (the one-digit ones to /predict too), and prints
one row per kind. Whole number right: every digit right, none missing or extra. ECE: the
answered numbers' confidence in 10 equal-width bins against whole-number correctness. CPU:
the gateway process's own, over rounds of one 6-digit canvas posted to /read and to /predict
in turn. `--floors` exits 1 below FLOORS; `--picture` draws a few uploads with the boxes
/read answered and the number under each.
"""

import asyncio
import io
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bench.compare import cpu_seconds, process_tree
from bench.recognition import CONCURRENCY, answered, arguments, share, verdict
from bench.recognition_sets import (
    NOT_NUMBERS,
    ONE_DIGIT,
    SEEDS,
    Upload,
    mnist_split,
    number_uploads,
)
from scripts.services import loopback, quiet_stack

Read = dict[str, Any] | None  # /read's answer; None: refused

# CI's tripwires, not the targets: each kind's share of whole numbers right (numbers)
# or refused (not numbers), set under the full recipe's figures on the test split (200 uploads
# per kind, docs/recognition.md) by about three times the sampling noise of CI's 200.
FLOORS = {
    "row": 0.93,
    "long-row": 0.82,
    "touching": 0.22,
    "ruled": 0.85,
    "shadow": 0.86,
    "note": 0.79,
    "stray": 0.87,
    "printed": 0.45,
    "one-canvas": 0.92,
    "one-photo": 0.97,
    "text-line": 0.92,
    "blank": 0.97,
    "texture": 0.93,
    "paper-no-digit": 0.97,
    "shadow-no-digit": 0.97,
    "note-no-digit": 0.87,
}
AGREE_FLOOR = 0.985  # one digit: /read and /predict give the same digit or both refuse
# The ECE of separated canvas numbers (2.05% measured): the one group whose digits' product is
# meant to be calibrated; touching and printed numbers are over-confident (docs/recognition.md).
ECE_GROUP, ECE_CEILING = "canvas, separated", 0.06
GROUPS = {
    "canvas, separated": ("row",),
    "canvas, touching": ("touching",),
    "canvas, 7-10 digits": ("long-row",),
    "paper photos": ("ruled", "shadow", "note", "stray"),
    "printed": ("printed",),
    "one digit": tuple(ONE_DIGIT),
}
BINS = 10
PICTURED = {"row": 2, "touching": 2, "shadow": 1, "note": 1, "ruled": 1}  # and a refusal
CPU_ROUNDS, CPU_REQUESTS = 10, 30


async def read_all(
    uploads: list[Upload], gateway_url: str
) -> tuple[list[Read], list[Read], dict[int, str]]:
    """Each upload's answer from /read, and from /predict for the one-digit kinds; and the
    uploads answered neither 200 nor 422 (a bug: counted, quoted, and not a refusal)."""
    reads: list[Read] = [None] * len(uploads)
    predictions: list[Read] = [None] * len(uploads)
    errors: dict[int, str] = {}
    limit = asyncio.Semaphore(CONCURRENCY)
    # A new connection per request: one the gateway drops after an error fails no other upload.
    fresh = httpx.Limits(max_keepalive_connections=0)

    async with httpx.AsyncClient(timeout=60, limits=fresh) as client:

        async def one(index: int, upload: Upload) -> None:
            async with limit:
                try:
                    reads[index] = await answered(client, f"{gateway_url}/read", upload.data)
                    if upload.kind in ONE_DIGIT:
                        url = f"{gateway_url}/predict"
                        predictions[index] = await answered(client, url, upload.data)
                except RuntimeError as exc:
                    errors[index] = f"{upload.kind} {upload.label}: {exc}"

        await asyncio.gather(*(one(i, u) for i, u in enumerate(uploads)))
    return reads, predictions, errors


def agrees(read: Read, prediction: Read) -> bool:
    if read is None or prediction is None:
        return read is prediction
    return bool(read["number"] == str(prediction["predicted_digit"]))


def calibration_error(answers: list[tuple[float, bool]]) -> float:
    """ECE of (confidence, right) pairs: the gaps between mean confidence and share right in
    BINS equal-width bins, weighted by the bins' sizes."""
    if not answers:
        return float("nan")
    confidence, right = np.asarray(answers, float).T
    index = np.minimum((confidence * BINS).astype(int), BINS - 1)
    return float(np.abs(np.bincount(index, right - confidence, BINS)).sum() / len(answers))


def counted(
    uploads: list[Upload], reads: list[Read], errors: dict[int, str]
) -> dict[str, Counter[str]]:
    """kind -> uploads, refused, whole number right, digit count right."""
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    for index, (upload, read) in enumerate(zip(uploads, reads, strict=True)):
        counts = rows[upload.kind]
        counts["n"] += 1
        if index in errors:
            continue
        if read is None:
            counts["refused"] += 1
        elif isinstance(upload.label, str):
            counts["right"] += read["number"] == upload.label
            counts["count"] += len(read["number"]) == len(upload.label)
    return rows


def calibration(uploads: list[Upload], reads: list[Read]) -> dict[str, tuple[int, float]]:
    """Numbers answered and their ECE: overall, then per group of kinds."""
    groups = {"all numbers": tuple(kind for kinds in GROUPS.values() for kind in kinds), **GROUPS}
    figures = {}
    for name, kinds in groups.items():
        answers = [
            (read["confidence"], read["number"] == upload.label)
            for upload, read in zip(uploads, reads, strict=True)
            if read is not None and upload.kind in kinds
        ]
        figures[name] = len(answers), calibration_error(answers)
    return figures


def table(
    uploads: list[Upload], reads: list[Read], predictions: list[Read], errors: dict[int, str]
) -> tuple[str, list[str]]:
    """The printed tables, and what falls below its floor."""
    lines = [
        "| kind | uploads | refused | whole number right | digit count right |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    failures = []
    for kind, counts in counted(uploads, reads, errors).items():
        if kind in NOT_NUMBERS:
            key = "refused"
            lines.append(f"| {kind} (not a number) | {counts['n']} | {share(counts, key)} | | |")
        else:
            key = "right"
            lines.append(
                f"| {kind} | {counts['n']} | {share(counts, 'refused')} | "
                f"{share(counts, key)} | {share(counts, 'count')} |"
            )
        if counts[key] / counts["n"] < (floor := FLOORS[kind]):
            failures.append(f"{kind}: {share(counts, key)} {key} < {floor:.0%}")
    not_numbers = [
        read is None
        for index, (upload, read) in enumerate(zip(uploads, reads, strict=True))
        if upload.label is None and index not in errors
    ]
    pairs = [
        agrees(read, prediction)
        for upload, read, prediction in zip(uploads, reads, predictions, strict=True)
        if upload.kind in ONE_DIGIT
    ]
    lines += [
        "",
        f"- not a number, refused: {sum(not_numbers)}/{len(not_numbers)} "
        f"({sum(not_numbers) / len(not_numbers):.2%})",
        f"- one digit: /read and /predict give the same digit or both refuse: "
        f"{sum(pairs)}/{len(pairs)} ({sum(pairs) / len(pairs):.2%})",
    ]
    if errors:
        failures.append(f"{len(errors)} uploads answered neither 200 nor 422")
        lines.append(f"- {failures[-1]}; the first: {min(errors.items())[1][:300]}")
    lines += ["", "| numbers of | answered | ECE of `confidence` |", "| --- | ---: | ---: |"]
    figures = calibration(uploads, reads)
    lines += [f"| {name} | {n} | {ece:.2%} |" for name, (n, ece) in figures.items()]
    if sum(pairs) / len(pairs) < AGREE_FLOOR:
        failures.append(f"/read and /predict agree on {sum(pairs) / len(pairs):.2%}")
    if not figures[ECE_GROUP][1] <= ECE_CEILING:
        failures.append(f"ECE of {ECE_GROUP} {figures[ECE_GROUP][1]:.2%} > {ECE_CEILING:.0%}")
    return "\n".join(lines), failures


def cpu_per_request(gateway_pid: int, gateway_url: str, data: bytes) -> dict[str, float]:
    """The gateway's CPU ms per request of `data` to /read and to /predict, one at a time, in
    alternating rounds (turns swapped each round, so a drift of the machine favours neither)."""
    pids = process_tree(gateway_pid)
    spent = {"/read": 0.0, "/predict": 0.0}
    with httpx.Client(base_url=gateway_url, timeout=60) as client:
        for round_ in range(CPU_ROUNDS + 1):  # the first warms up, uncounted
            for route in list(spent)[:: -1 if round_ % 2 else 1]:
                before = cpu_seconds(pids)
                for _ in range(CPU_REQUESTS):
                    client.post(route, files={"file": ("number.png", data)})
                spent[route] += (cpu_seconds(pids) - before) * bool(round_)
    return {route: seconds * 1000 / (CPU_ROUNDS * CPU_REQUESTS) for route, seconds in spent.items()}


def kind_indices(uploads: list[Upload], kind: str) -> list[int]:
    return [index for index, upload in enumerate(uploads) if upload.kind == kind]


def draw_picture(uploads: list[Upload], reads: list[Read], path: Path) -> None:
    """A few uploads (canvas, touching, photos, a refusal), /read's boxes drawn on each and
    the number it read (green: right, red: wrong) under it."""
    refused = [i for i, u in enumerate(uploads) if u.label is None and reads[i] is None]
    chosen = [
        *(i for kind, n in PICTURED.items() for i in kind_indices(uploads, kind)[:n]),
        *refused[:1],
    ]
    tile, caption = (300, 180), 36
    sheet = Image.new("RGB", (4 * tile[0], 2 * (tile[1] + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=15)
    for n, index in enumerate(chosen):
        upload, read = uploads[index], reads[index]
        image = Image.open(io.BytesIO(upload.data)).convert("RGB")
        scale = min(tile[0] / image.width, tile[1] / image.height)
        image = image.resize((round(image.width * scale), round(image.height * scale)))
        left, top = (n % 4) * tile[0], (n // 4) * (tile[1] + caption)
        sheet.paste(image, (left, top))
        for digit in read["digits"] if read else []:
            x0, y0, x1, y1 = (left, top, left, top) + np.asarray(digit["box"]) * scale
            draw.rectangle((x0, y0, x1, y1), outline=(40, 90, 220), width=2)
        if read is None:
            text, colour = "refused", (90, 90, 90)
        else:
            right = read["number"] == upload.label
            text = f"{read['number']} ({read['confidence']:.0%})"
            text += "" if right else f", drawn {upload.label}"
            colour = (20, 140, 40) if right else (200, 30, 30)
        draw.text((left + 4, top + tile[1] + 6), f"{upload.kind}: {text}", colour, font)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    print(f"wrote {path} ({sheet.width}x{sheet.height})")


def main() -> int:
    parser = arguments("bench.reading", __doc__, per_kind=500, port=18521)
    parser.add_argument("--picture", type=Path, help="write a PNG of a few uploads read")
    args = parser.parse_args()

    images, labels = mnist_split(args.data, args.split)
    uploads = list(number_uploads(images, labels, args.per_kind, SEEDS[args.split]))
    six = next(u for u in uploads if u.kind == "row" and len(str(u.label)) == 6)
    print(f"{len(uploads)} uploads made", flush=True)

    gateway_url = loopback(args.gateway_port)
    with quiet_stack(args.model_dir, args.serving_port, args.gateway_port) as (_, gateway):
        reads, predictions, errors = asyncio.run(read_all(uploads, gateway_url))
        cpu = cpu_per_request(gateway.pid, gateway_url, six.data)

    text, failures = table(uploads, reads, predictions, errors)
    print(
        f"\nReading numbers on the {args.split} split, {os.cpu_count()} cores, model "
        f"{args.model_dir}:\n\n{text}\n\n- gateway CPU per request of one 6-digit canvas: "
        f"/read {cpu['/read']:.1f} ms, /predict {cpu['/predict']:.1f} ms "
        f"(ratio {cpu['/read'] / cpu['/predict']:.2f})"
    )
    if args.picture:
        draw_picture(uploads, reads, args.picture)
    return verdict(args.floors, failures)


if __name__ == "__main__":
    sys.exit(main())
