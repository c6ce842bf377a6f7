"""`make run` on a machine with no model: a quick model serves first, the full recipe trains
in the background and is swapped in under traffic, and a second run serves at once."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from scripts.services import until
from tests.drawings import draw_digit, encode
from tests.e2e.conftest import ROOT, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def launch(npz: Path, models: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    serving_port, gateway_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "scripts.local_stack",
        "--data",
        str(npz),
        "--model-dir",
        str(models),
        "--serving-port",
        str(serving_port),
        "--gateway-port",
        str(gateway_port),
        "--gateway-workers",
        "1",
        # Small synthetic data: one epoch of each recipe, no accuracy gate.
        "--epochs",
        "1",
        "--min-accuracy",
        "0",
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    return process, f"http://127.0.0.1:{gateway_port}"


def predicts(url: str, upload: dict[str, tuple[str, bytes, str]]) -> Callable[[], bool]:
    return lambda: httpx.post(f"{url}/predict", files=upload, timeout=5).status_code == 200


def served_recipe(url: str) -> str | None:
    card = httpx.get(f"{url}/model", timeout=5).json().get("model_card") or {}
    return card.get("architecture")


def interrupt(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)


def test_local_stack_serves_quick_model_then_swaps_in_the_full_one(
    synthetic_npz: Path, tmp_path: Path
) -> None:
    models, log = tmp_path / "models" / "mnist", tmp_path / "stack.log"
    process, url = launch(synthetic_npz, models, log)
    upload = {"file": ("seven.png", encode(draw_digit(7, size=120, stroke=3)), "image/png")}
    try:
        until(predicts(url, upload), "the quick model answers", 240, log)
        assert served_recipe(url) == "quick"

        statuses: Counter[int] = Counter()
        versions: Counter[str] = Counter()
        stop = threading.Event()

        def drive() -> None:
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    response = client.post(f"{url}/predict", files=upload)
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        versions[response.json()["model_version"]] += 1
                    time.sleep(0.05)

        driver = threading.Thread(target=drive)
        driver.start()
        try:
            until(lambda: served_recipe(url) == "default", "the full model served", 300, log)
            until(lambda: versions["2"] >= 10, "requests flow after the swap", 60, log)
        finally:
            stop.set()
            driver.join()

        assert set(statuses) == {200}, statuses
        assert set(versions) == {"1", "2"}, versions
    finally:
        interrupt(process)

    assert process.returncode == 0
    cards = sorted(models.glob("*/assets.extra/model_card.json"))
    assert [json.loads(path.read_text())["architecture"] for path in cards] == ["quick", "default"]

    # The next run finds both recipes published: it serves in seconds and trains nothing.
    started = time.monotonic()
    process, url = launch(synthetic_npz, models, log)
    try:
        until(predicts(url, upload), "the published model answers", 60, log)
        took = time.monotonic() - started
        assert served_recipe(url) == "default"
        until(lambda: log.read_text().count("The stack is up") == 2, "the banner", 30, log)
    finally:
        interrupt(process)
    assert took < 60
    assert "the full model is published; nothing to train" in log.read_text()
    assert len(list(models.iterdir())) == 2
