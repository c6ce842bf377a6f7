"""The whole path, as users run it: gateway and model server as real processes."""

import base64
import contextlib
import io
import os
import shutil
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from scripts.services import until
from tests.drawings import draw_digit, encode
from tests.e2e.conftest import Stack, free_port, gateway

pytestmark = pytest.mark.e2e


def drawing(digit: int, fmt: str = "PNG") -> bytes:
    image = draw_digit(digit, size=240, height_fraction=0.55, stroke=6, dark_on_light=True)
    return encode(image.convert("RGB") if fmt == "JPEG" else image, fmt)


def test_e2e_predict_png_and_jpeg_agree_with_the_model(shared_stack: Stack) -> None:
    for fmt in ("PNG", "JPEG"):
        response = httpx.post(
            f"{shared_stack.gateway.url}/predict?include_image=true",
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
            f"{shared_stack.serving.url}/v1/models/mnist:predict",
            json={"instances": [seen.tolist()]},
            timeout=30,
        ).json()["predictions"][0]
        assert body["predicted_digit"] == direct["digit"]
        np.testing.assert_allclose(body["probabilities"], direct["probabilities"], atol=0.02)


def test_e2e_batch_answers_each_file(shared_stack: Stack) -> None:
    files = [("files", (f"{d}.png", drawing(d), "image/png")) for d in range(6)]

    response = httpx.post(f"{shared_stack.gateway.url}/predict/batch", files=files, timeout=30)

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


def _animated_gif() -> bytes:
    frames = [draw_digit(d, size=120, stroke=4, dark_on_light=True).convert("P") for d in (3, 8)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def _sixteen_bit_png() -> bytes:
    pixels = np.asarray(draw_digit(5, size=120, stroke=4, dark_on_light=True), np.uint16) * 257
    return encode(Image.fromarray(pixels))


HOSTILE = [
    pytest.param(b"", "image/png", 400, id="zero-bytes"),
    pytest.param(b"plain text, not an image", "text/plain", 400, id="text"),
    pytest.param(b"<!DOCTYPE html><html><body>hi</body></html>", "text/html", 415, id="html"),
    pytest.param(
        b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="5"/></svg>',
        "image/svg+xml",
        415,
        id="svg",
    ),
    pytest.param(b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF", "application/pdf", 415, id="pdf"),
    pytest.param(encode(draw_digit(2, size=200))[:150], "image/png", 400, id="truncated-png"),
    pytest.param(
        encode(draw_digit(2, size=200).convert("RGB"), "JPEG")[:300],
        "image/jpeg",
        400,
        id="truncated-jpeg",
    ),
    pytest.param(
        bytes(64) + encode(draw_digit(2, size=64))[64:], "image/png", 400, id="corrupt-png"
    ),
    pytest.param(_png_declaring(200_000, 200_000), "image/png", 413, id="bomb-huge-declared-size"),
    pytest.param(os.urandom(3 * 1024 * 1024), "image/png", 413, id="oversize-body"),
    pytest.param(_animated_gif(), "image/gif", 200, id="animated-gif-first-frame"),
    pytest.param(_sixteen_bit_png(), "image/png", 200, id="16-bit-png"),
    pytest.param(
        encode(draw_digit(6, size=120, stroke=4, dark_on_light=True).convert("CMYK"), "JPEG"),
        "image/jpeg",
        200,
        id="cmyk-jpeg",
    ),
    pytest.param(
        encode(draw_digit(6, size=120, stroke=4, dark_on_light=True)),
        "application/json",
        200,
        id="png-labelled-json",
    ),
]


@pytest.mark.parametrize(("data", "content_type", "status"), HOSTILE)
def test_e2e_hostile_files_get_their_documented_status_and_stack_keeps_serving(
    shared_stack: Stack, data: bytes, content_type: str, status: int
) -> None:
    url = shared_stack.gateway.url
    response = httpx.post(
        f"{url}/predict", files={"file": ("upload", data, content_type)}, timeout=30
    )

    assert response.status_code == status
    if status >= 400:
        assert isinstance(response.json()["detail"], str)
    else:
        assert 0 <= response.json()["predicted_digit"] <= 9
    again = httpx.post(
        f"{url}/predict", files={"file": ("ok.png", drawing(3), "image/png")}, timeout=30
    )
    assert again.status_code == 200


def test_e2e_hundred_files_in_one_batch_is_refused(shared_stack: Stack) -> None:
    files = [("files", (f"{i}.png", drawing(i % 10), "image/png")) for i in range(100)]

    response = httpx.post(f"{shared_stack.gateway.url}/predict/batch", files=files, timeout=30)

    assert response.status_code == 422
    assert "more than the 64 allowed" in response.json()["detail"]


def test_e2e_gateway_workers_answer_and_report_metrics_together(
    shared_stack: Stack, tmp_path: Path
) -> None:
    front = gateway(shared_stack.serving.url, free_port(), tmp_path / "gateway.log")
    front.command += ["--workers", "2"]
    png = drawing(3)

    def post(_: int) -> int:
        files = {"file": ("three.png", png, "image/png")}
        return httpx.post(f"{front.url}/predict", files=files, timeout=30).status_code

    try:
        front.start()
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(post, range(40)))
        scrape = httpx.get(f"{front.url}/metrics", timeout=10).text
    finally:
        front.stop()

    assert statuses == [200] * 40
    # Whichever worker answers the scrape reports the requests of both.
    assert 'gateway_requests_total{method="POST",route="/predict",status="200"} 40.0' in scrape


@contextlib.contextmanager
def requests_flowing(url: str) -> Iterator[list[tuple[float, int, str]]]:
    """POST digits to the gateway from a thread for as long as the block runs."""
    stop = threading.Event()
    results: list[tuple[float, int, str]] = []
    flow = threading.Thread(target=_flow, args=(url, stop, results))
    flow.start()
    try:
        yield results
    finally:
        stop.set()
        flow.join()


def _flow(url: str, stop: threading.Event, results: list[tuple[float, int, str]]) -> None:
    """Keep POSTing a digit until told to stop, recording (time sent, status, version)."""
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                response = client.post(
                    f"{url}/predict", files={"file": ("d.png", drawing(4), "image/png")}
                )
                version = (
                    response.json().get("model_version", "") if response.status_code == 200 else ""
                )
                results.append((sent, response.status_code, version))
            except httpx.HTTPError as exc:
                results.append((sent, -1, type(exc).__name__))
            time.sleep(0.02)


def answered_after(results: list[tuple[float, int, str]], moment: float) -> int:
    """How many requests sent after `moment` have their answer."""
    return sum(1 for sent, _, _ in results if sent > moment)


def test_e2e_model_server_outage_gives_503_then_recovers(stack: Stack) -> None:
    with requests_flowing(stack.gateway.url) as results:
        until(lambda: len(results) >= 5, "requests answered before the outage")
        stack.serving.stop()  # returns once the process has exited
        stopped = time.monotonic()
        until(lambda: answered_after(results, stopped) >= 5, "requests answered in the outage")
        ready_while_down = httpx.get(f"{stack.gateway.url}/readyz", timeout=10).status_code
        healthy_while_down = httpx.get(f"{stack.gateway.url}/healthz", timeout=10).status_code
        restarted = time.monotonic()
        stack.serving.start()
        ready = f"{stack.gateway.url}/readyz"
        until(lambda: httpx.get(ready, timeout=10).status_code == 200, "the gateway ready again")
        recovered = time.monotonic()
        until(lambda: answered_after(results, recovered) >= 5, "requests answered after")

    assert ready_while_down == 503 and healthy_while_down == 200
    statuses = Counter(status for _, status, _ in results)
    assert set(statuses) <= {200, 503}, statuses  # no 500, no hang, no dropped connection
    during = [status for sent, status, _ in results if stopped < sent < restarted]
    assert during and set(during) == {503}
    after = [status for sent, status, _ in results if sent > recovered]
    assert set(after) == {200}


def test_e2e_new_version_published_while_requests_flow(stack: Stack) -> None:
    with requests_flowing(stack.gateway.url) as results:
        until(lambda: len(results) >= 5, "requests answered before publishing")
        staging = stack.base / ".staging"
        shutil.copytree(stack.base / "1", staging)
        os.rename(staging, stack.base / "2")
        until(lambda: any(v == "2" for _, _, v in results), "an answer from version 2")
        swapped = time.monotonic()
        until(lambda: answered_after(results, swapped) >= 5, "requests answered after the swap")

    assert [s for _, s, _ in results if s != 200] == []
    versions = [v for _, _, v in results]
    assert versions[0] == "1" and versions[-1] == "2"
    model = httpx.get(f"{stack.gateway.url}/model", timeout=10).json()
    assert model["serving_version"] == "2"
    assert model["model_card"]["architecture"] == "seed"
