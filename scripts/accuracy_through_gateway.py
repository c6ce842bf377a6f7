"""Accuracy of the served model through the whole stack, on the real MNIST test split.

Starts the local model server and the gateway on a published model, sends test digits as
image uploads to /predict/batch and compares the answers with the labels:
  * "model alone": MNIST's tensors sent to the model server directly, for reference;
  * "mnist png": the digits as MNIST stores them (white on black, 28x28 PNG);
  * "paper jpeg": the same digits as a user would photograph them: dark ink on light
    paper, enlarged to 112x112, off centre on a 160x160 sheet, JPEG-compressed.

    python scripts/accuracy_through_gateway.py --data mnist.npz --model-dir models/mnist \
        [--count 2000] [--min-accuracy 0.98]
"""

import argparse
import io
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from services import gateway_command, model_server_command, start, stop  # noqa: E402

BATCH = 50


def as_png(digit: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(digit).save(buffer, format="PNG")
    return buffer.getvalue()


def as_paper_jpeg(digit: np.ndarray, offset: int) -> bytes:
    sheet = Image.new("L", (160, 160), 225)
    ink = Image.fromarray(255 - digit).resize((112, 112), Image.Resampling.BICUBIC)
    sheet.paste(ink.point(lambda v: min(v, 225)), (offset, 48 - offset // 2))
    buffer = io.BytesIO()
    sheet.convert("RGB").save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def accuracy(gateway: str, uploads: list[bytes], labels: np.ndarray) -> float:
    correct = 0
    with httpx.Client(timeout=60) as client:
        for start in range(0, len(uploads), BATCH):
            files = [
                ("files", (f"{i}.img", data, "application/octet-stream"))
                for i, data in enumerate(uploads[start : start + BATCH])
            ]
            response = client.post(f"{gateway}/predict/batch", files=files)
            response.raise_for_status()
            predicted = [p["predicted_digit"] for p in response.json()["predictions"]]
            correct += int((np.asarray(predicted) == labels[start : start + BATCH]).sum())
    return correct / len(uploads)


def accuracy_direct(serving: str, images: np.ndarray, labels: np.ndarray) -> float:
    """The model alone on MNIST's own tensors: the ceiling the gateway is measured against."""
    correct = 0
    with httpx.Client(timeout=60) as client:
        for start in range(0, len(images), BATCH):
            batch = images[start : start + BATCH, :, :, None].astype(np.float32) / 255.0
            response = client.post(
                f"{serving}/v1/models/mnist:predict", json={"instances": batch.tolist()}
            )
            response.raise_for_status()
            predicted = [p["digit"] for p in response.json()["predictions"]]
            correct += int((np.asarray(predicted) == labels[start : start + BATCH]).sum())
    return correct / len(images)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--min-accuracy", type=float, default=0.98)
    parser.add_argument("--serving-port", type=int, default=18501)
    parser.add_argument("--gateway-port", type=int, default=18000)
    args = parser.parse_args()

    with np.load(args.data) as data:
        images, labels = data["x_test"][: args.count], data["y_test"][: args.count].astype(int)

    serving_url = f"http://127.0.0.1:{args.serving_port}"
    gateway_url = f"http://127.0.0.1:{args.gateway_port}"
    env = {
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "GATEWAY_TF_SERVING_URL": serving_url,
        "GATEWAY_MAX_BATCH": str(BATCH),
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(
            start(
                model_server_command(args.model_dir, args.serving_port, "--log-level", "warning"),
                f"{serving_url}/v1/models/mnist",
                env,
            )
        )
        processes.append(
            start(
                gateway_command(args.gateway_port, "--log-level", "warning"),
                f"{gateway_url}/readyz",
                env,
                timeout_s=60,
            )
        )

        results = {
            "model alone": accuracy_direct(serving_url, images, labels),
            "mnist png": accuracy(gateway_url, [as_png(d) for d in images], labels),
            "paper jpeg": accuracy(
                gateway_url, [as_paper_jpeg(d, i % 40) for i, d in enumerate(images)], labels
            ),
        }
    finally:
        stop(processes)

    print(f"\nAccuracy through the gateway on {len(labels)} MNIST test digits")
    print(f"{'uploads':<12} {'accuracy':>9}")
    for name, value in results.items():
        print(f"{name:<12} {value:>9.2%}")
    failed = [name for name, value in results.items() if value < args.min_accuracy]
    if failed:
        print(f"error: below {args.min_accuracy:.0%}: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
