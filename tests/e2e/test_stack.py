"""The whole path, as users run it: gateway and model server as real processes."""

import base64
import io
import os
import shutil
import struct
import threading
import time
import zlib
from collections import Counter

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.digit_images import draw_digit, encode
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def drawing(digit: int, fmt: str = "PNG") -> bytes:
    image = draw_digit(digit, size=240, height_fraction=0.55, stroke=6, dark_on_light=True)
    return encode(image.convert("RGB") if fmt == "JPEG" else image, fmt)


def test_e2e_predict_png_and_jpeg_agree_with_the_model(stack: Stack) -> None:
    for fmt in ("PNG", "JPEG"):
        response = httpx.post(
            f"{stack.gateway.url}/predict?include_image=true",
            files={"file": (f"seven.{fmt.lower()}", drawing(7, fmt), f"image/{fmt.lower()}")},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == "1"
        assert len(body["probabilities"]) == 10
        # The model server, given the image the gateway says it sent, answers the same.
        png = base64.b64decode(body["normalized_image"].split(",", 1)[1])
        seen = np.asarray(Image.open(io.BytesIO(png)), dtype=np.float32)[..., None] / 255.0
        direct = httpx.post(
            f"{stack.serving.url}/v1/models/mnist:predict",
            json={"instances": [seen.tolist()]},
            timeout=30,
        ).json()["predictions"][0]
        assert body["predicted_digit"] == direct["digit"]
        np.testing.assert_allclose(body["probabilities"], direct["probabilities"], atol=0.02)


def test_e2e_batch_answers_each_file(stack: Stack) -> None:
    files = [("files", (f"{d}.png", drawing(d), "image/png")) for d in range(6)]

    response = httpx.post(f"{stack.gateway.url}/predict/batch", files=files, timeout=30)

    assert response.status_code == 200
    body = response.json()
    assert [p["filename"] for p in body["predictions"]] == [f"{d}.png" for d in range(6)]
    # A one-epoch model on synthetic digits still reads most clean drawings right.
    right = sum(p["predicted_digit"] == d for d, p in enumerate(body["predictions"]))
    assert right >= 3


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"", 400, id="empty"),
        pytest.param(b"plain text, not an image", 400, id="text"),
        pytest.param(encode(draw_digit(2, size=200))[:150], 400, id="truncated-png"),
        pytest.param(_png_declaring(200_000, 200_000), 413, id="huge-declared-size"),
        pytest.param(os.urandom(3 * 1024 * 1024), 413, id="oversize-body"),
    ],
)
def test_e2e_bad_input_gets_4xx_and_stack_keeps_serving(
    stack: Stack, data: bytes, status: int
) -> None:
    response = httpx.post(
        f"{stack.gateway.url}/predict",
        files={"file": ("upload.png", data, "image/png")},
        timeout=30,
    )

    assert response.status_code == status
    assert isinstance(response.json()["detail"], str)
    again = httpx.post(
        f"{stack.gateway.url}/predict",
        files={"file": ("ok.png", drawing(3), "image/png")},
        timeout=30,
    )
    assert again.status_code == 200


def _flow(url: str, stop: threading.Event, results: list[tuple[float, int, str]]) -> None:
    """Keep POSTing a digit until told to stop, recording (time, status, version)."""
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            try:
                response = client.post(
                    f"{url}/predict", files={"file": ("d.png", drawing(4), "image/png")}
                )
                version = (
                    response.json().get("model_version", "") if response.status_code == 200 else ""
                )
                results.append((time.monotonic(), response.status_code, version))
            except httpx.HTTPError as exc:
                results.append((time.monotonic(), -1, type(exc).__name__))
            time.sleep(0.02)


def test_e2e_model_server_outage_gives_503_then_recovers(stack: Stack) -> None:
    stop = threading.Event()
    results: list[tuple[float, int, str]] = []
    flow = threading.Thread(target=_flow, args=(stack.gateway.url, stop, results))
    flow.start()
    try:
        time.sleep(1.0)
        stack.serving.stop()
        time.sleep(1.5)
        ready_while_down = httpx.get(f"{stack.gateway.url}/readyz", timeout=10).status_code
        healthy_while_down = httpx.get(f"{stack.gateway.url}/healthz", timeout=10).status_code
        restarted = time.monotonic()
        stack.serving.start()
        recovered = None
        while time.monotonic() - restarted < 60:
            if httpx.get(f"{stack.gateway.url}/readyz", timeout=10).status_code == 200:
                recovered = time.monotonic()
                break
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        stop.set()
        flow.join()

    assert ready_while_down == 503 and healthy_while_down == 200
    statuses = Counter(status for _, status, _ in results)
    assert set(statuses) <= {200, 503}, statuses  # no 500, no hang, no dropped connection
    assert statuses[503] > 0
    assert recovered is not None
    after = [status for moment, status, _ in results if moment > recovered + 0.5]
    assert after and set(after) == {200}


def test_e2e_new_version_published_while_requests_flow(stack: Stack) -> None:
    stop = threading.Event()
    results: list[tuple[float, int, str]] = []
    flow = threading.Thread(target=_flow, args=(stack.gateway.url, stop, results))
    flow.start()
    try:
        time.sleep(1.0)
        staging = stack.base / ".staging"
        shutil.copytree(stack.base / "1", staging)
        os.rename(staging, stack.base / "2")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(v == "2" for _, _, v in results[-5:]):
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        stop.set()
        flow.join()

    assert [s for _, s, _ in results if s != 200] == []
    versions = [v for _, _, v in results]
    assert versions[0] == "1" and versions[-1] == "2"
    model = httpx.get(f"{stack.gateway.url}/model", timeout=10).json()
    assert model["serving_version"] == "2"
    assert model["model_card"]["architecture"] == "seed"
