"""The compose stack, built and run for real: `make compose-check`.

Builds every image, brings the stack up with the local model server in place of
tensorflow/serving (compose.local-server.yml) and the quick recipe, checks what a user and an
operator would do through 127.0.0.1's published ports only, and takes it all down again, on
failure too. Runs under its own compose project name, so a stack of the user's is left alone.
Each check prints its figure; the first that fails stops the run with the services' logs.
"""

import argparse
import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.digits import encode
from scripts.services import until

PROJECT = "mnist-compose-check"
COMPOSE = ["docker", "compose", "-p", PROJECT, "-f", "docker-compose.yml",
           "-f", "compose.local-server.yml"]
IMAGES = ["mnist-trainer:0.1.0", "mnist-model-server:0.1.0", "mnist-gateway:0.1.0"]
OFFICIAL_PYTHON_IMAGE = "python:3.11.11-slim-bookworm"
LOCAL_PYTHON_IMAGE = "local/python:3.11-slim-bookworm"  # scripts/docker_host.sh
GATEWAY = "http://127.0.0.1:8000"
MODEL_SERVER = "http://127.0.0.1:8501"
API_KEY = "compose-check-key"
FEEDBACK_USER = "10001"  # Dockerfile.gateway's USER


class CheckFailed(Exception):
    pass


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise CheckFailed(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return done.stdout


def compose(*args: str) -> str:
    return run(*COMPOSE, *args)


def gateway_ready() -> bool:
    return httpx.get(f"{GATEWAY}/readyz", timeout=5).status_code == 200


def png(pixels: np.ndarray) -> bytes:
    return encode(Image.fromarray(pixels))


def predict(client: httpx.Client, data: bytes, **headers: str) -> httpx.Response:
    return client.post("/predict", files={"file": ("digit.png", data, "image/png")},
                       headers=headers)


def check_predictions(client: httpx.Client, images: np.ndarray, labels: np.ndarray) -> str:
    right = sum(
        predict(client, png(image)).json()["predicted_digit"] == label
        for image, label in zip(images[:20], labels[:20], strict=True)
    )
    if right < 19:
        raise CheckFailed(f"/predict: {right} of 20 MNIST test digits right (at least 19)")
    files = [("files", (f"{index}.png", png(image), "image/png"))
             for index, image in enumerate(images[:64])]
    batch = client.post("/predict/batch", files=files).json()["predictions"]
    if len(batch) != 64:
        raise CheckFailed(f"/predict/batch of 64 files answered {len(batch)} entries")
    body = {"signature_name": "predict_image_bytes",
            "instances": [{"b64": base64.b64encode(png(images[0])).decode()}]}
    direct = httpx.post(f"{MODEL_SERVER}/v1/models/mnist:predict", json=body, timeout=30)
    digit = direct.json()["predictions"][0]["digit"]
    if digit != labels[0]:
        raise CheckFailed(f"predict_image_bytes on :8501 answered {direct.text[:200]}")
    return f"/predict {right}/20 right; /predict/batch 64 -> {len(batch)}; :8501 " \
           f"predict_image_bytes -> {digit}"


def check_read(client: httpx.Client, images: np.ndarray, labels: np.ndarray) -> str:
    """Four MNIST digits side by side, dark on white, read as one number through /read."""
    row = np.full((112 + 60, 4 * (112 + 30) + 30), 255, np.uint8)
    for index, image in enumerate(images[:4]):
        big = np.kron(255 - image, np.ones((4, 4), np.uint8))
        row[30:142, 30 + index * 142 : 142 + index * 142] = big
    answer = client.post("/read", files={"file": ("number.png", png(row), "image/png")})
    expected = "".join(str(label) for label in labels[:4])
    if answer.status_code != 200 or answer.json()["number"] != expected:
        raise CheckFailed(f"/read of {expected}: {answer.status_code} {answer.text[:200]}")
    return f"/read {expected} -> {answer.json()['number']}, {len(answer.json()['digits'])} boxes"


def check_feedback(client: httpx.Client, image: np.ndarray) -> str:
    answer = client.post("/feedback", files={"file": ("d.png", png(image), "image/png")},
                         data={"label": "3"})
    if answer.status_code != 201:
        raise CheckFailed(f"/feedback answered {answer.status_code} {answer.text}")
    item = answer.json()["id"]
    owners = compose("exec", "-T", "gateway", "stat", "-c", "%u %n",
                     f"/feedback/{item}.png", f"/feedback/{item}.json").split()
    if owners[0::2] != [FEEDBACK_USER, FEEDBACK_USER]:
        raise CheckFailed(f"feedback files in the volume: {owners}")
    return f"/feedback 201, {item}.png and .json in the volume, owned by uid {FEEDBACK_USER}"


def check_new_version(client: httpx.Client, image: np.ndarray) -> str:
    started = time.monotonic()
    compose("run", "--rm", "trainer", "--arch", "quick", "--model-dir", "/models/mnist")
    trained = time.monotonic() - started

    def served_by_2() -> bool:
        answer = predict(client, png(image))
        return answer.status_code == 200 and answer.json()["model_version"] == "2"

    followed = until(served_by_2, "unpinned /predict answered by version 2", 120)
    return f"`run --rm trainer` published version 2 in {trained:.0f} s; unpinned " \
           f"/predict answered by it {followed:.1f} s later (no `stable` label: the newest)"


def check_restart(client: httpx.Client, image: np.ndarray) -> str:
    compose("stop", "tf-serving")
    statuses = {predict(client, png(image)).status_code for _ in range(3)}
    if statuses != {503}:
        raise CheckFailed(f"/predict with the model server stopped answered {statuses}")
    compose("start", "tf-serving")
    back = until(lambda: predict(client, png(image)).status_code == 200,
                 "/predict after the restart", 180)
    return f"model server stopped: /predict 503 x3; started: 200 again after {back:.1f} s"


def check_api_keys(client: httpx.Client, image: np.ndarray) -> str:
    os.environ["GATEWAY_API_KEYS"] = API_KEY
    compose("up", "-d", "--no-deps", "gateway")
    until(gateway_ready, "the gateway with API keys", 120)
    without = predict(client, png(image)).status_code
    with_key = predict(client, png(image), **{"X-API-Key": API_KEY}).status_code
    if (without, with_key) != (401, 200):
        raise CheckFailed(f"with GATEWAY_API_KEYS: no key {without}, the key {with_key}")
    return "GATEWAY_API_KEYS set: /predict without a key 401, with it 200"


def leftovers() -> list[str]:
    label = f"label=com.docker.compose.project={PROJECT}"
    return [
        f"{kind} {name}"
        for kind in ("container", "volume", "network")
        for name in run("docker", kind, "ls", "-q", "--filter", label,
                        *(["--all"] if kind == "container" else [])).split()
    ]


@contextmanager
def stack() -> Iterator[float]:
    """The stack up (yields the seconds it took to answer), always taken down after."""
    started = time.monotonic()
    try:
        compose("up", "-d")
        until(gateway_ready, "the gateway ready", 600)
        yield time.monotonic() - started
    except BaseException:
        logs = subprocess.run([*COMPOSE, "logs", "--tail", "40"], capture_output=True, text=True)
        print(logs.stdout[-8000:], file=sys.stderr)
        raise
    finally:
        subprocess.run([*COMPOSE, "down", "-v", "--remove-orphans"], capture_output=True)


def set_environment(data: Path) -> None:
    """What compose reads: the quick recipe, MNIST from the file, the base image at hand."""
    have_official = subprocess.run(["docker", "image", "inspect", OFFICIAL_PYTHON_IMAGE],
                                   capture_output=True).returncode == 0
    os.environ.update(
        TRAIN_RECIPE="quick",
        MNIST_FILE=str(data.resolve()),
        PYTHON_IMAGE=OFFICIAL_PYTHON_IMAGE if have_official else LOCAL_PYTHON_IMAGE,
    )
    os.environ.pop("GATEWAY_API_KEYS", None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="MNIST in Keras' mnist.npz")
    args = parser.parse_args(argv)
    set_environment(args.data)
    with np.load(args.data) as mnist:
        images, labels = mnist["x_test"][:64], mnist["y_test"][:64]
    started = time.monotonic()

    def report(check: str, text: str) -> None:
        print(f"{time.monotonic() - started:6.0f} s  {check:<12} {text}", flush=True)

    try:
        build_started = time.monotonic()
        compose("build")
        sizes = run("docker", "image", "inspect", "--format", "{{.Size}}", *IMAGES).split()
        built = ", ".join(f"{image} {int(size) / 1e6:.0f} MB"
                          for image, size in zip(IMAGES, sizes, strict=True))
        report("build", f"{time.monotonic() - build_started:.0f} s from "
               f"{os.environ['PYTHON_IMAGE']}: {built}")
        with stack() as up_s, httpx.Client(base_url=GATEWAY, timeout=30) as client:
            report("up", f"ready in {up_s:.0f} s (quick recipe trained from MNIST_FILE)")
            report("predict", check_predictions(client, images, labels))
            report("read", check_read(client, images, labels))
            report("feedback", check_feedback(client, images[0]))
            report("new version", check_new_version(client, images[0]))
            report("restart", check_restart(client, images[0]))
            report("api keys", check_api_keys(client, images[0]))
        left = leftovers()
        if left:
            raise CheckFailed(f"`down -v` left {left}")
        report("down -v", "no container, volume or network of the project left")
    except (CheckFailed, TimeoutError) as failure:
        print(f"compose-check FAILED: {failure}", file=sys.stderr)
        return 1
    report("passed", f"in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
