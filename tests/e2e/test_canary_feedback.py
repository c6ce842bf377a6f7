"""The weighted canary and feedback through real processes: the local model server with a
models.config that labels two versions `stable` and `canary`, and a gateway sending 20%
of its unpinned requests to the canary and storing feedback in a folder."""

import base64
import io
import json
import os
import re
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from scripts.services import until
from tests.drawings import draw_digit, encode
from tests.e2e.conftest import Service, config_model_server, free_port, gateway

pytestmark = pytest.mark.e2e

CANARY_PERCENT = 20
REQUESTS = 400
# 20% of 400 is 80, with a standard deviation of 8: 12-28% is 4 of them each side.
LOWEST, HIGHEST = REQUESTS * 12 // 100, REQUESTS * 28 // 100
STABLE, CANARY = "1", "2"
CONFIG = """model_config_list {{
  config {{
    name: "mnist"
    base_path: "{base}"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
{labels}  }}
}}
"""


def write_config(path: Path, base: Path, labels: dict[str, int]) -> None:
    """Replace the models.config in one step, as an editor or a ConfigMap update would."""
    lines = "".join(f'    version_labels {{ key: "{k}" value: {v} }}\n' for k, v in labels.items())
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(CONFIG.format(base=base, labels=lines))
    os.replace(temporary, path)


def drawing(digit: int) -> bytes:
    return encode(draw_digit(digit, size=240, height_fraction=0.55, stroke=6, dark_on_light=True))


@dataclass
class CanaryStack:
    config: Path
    base: Path
    feedback: Path
    serving: Service
    gateway: Service


def wait_for_label(serving: Service, label: str, present: bool) -> None:
    """Until the model server resolves `label` (present) or refuses it (not present)."""
    url = f"{serving.url}/v1/models/mnist/labels/{label}/metadata"
    what = f"label {label!r} {'resolved' if present else 'refused'}"
    until(lambda: (httpx.get(url, timeout=5).status_code == 200) == present, what)


@pytest.fixture(scope="module")
def canary_stack(
    exported_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CanaryStack]:
    folder = tmp_path_factory.mktemp("canary")
    base = folder / "models" / "mnist"
    for version in (STABLE, CANARY):
        shutil.copytree(exported_model, base / version)
    config = folder / "models.config"
    write_config(config, base, {"stable": 1, "canary": 2})
    port = free_port()
    serving = config_model_server(config, port, folder / "serving.log")
    feedback = folder / "feedback"
    front = gateway(
        serving.url,
        free_port(),
        folder / "gateway.log",
        # No pin: the requests not drawn for the canary go to the `stable` label, not to
        # version 2, which is newer.
        canary_percent=str(CANARY_PERCENT),
        feedback_dir=str(feedback),
    )
    try:
        serving.start()
        wait_for_label(serving, "stable", present=True)
        wait_for_label(serving, "canary", present=True)
        front.start()
        yield CanaryStack(config, base, feedback, serving, front)
    finally:
        front.stop()
        serving.stop()


def predict_many(url: str, count: int) -> list[tuple[int, str]]:
    """`count` unpinned predictions, 8 at a time: (status, model_version) each."""
    png = drawing(4)
    with httpx.Client(timeout=30) as client:

        def post(_: int) -> tuple[int, str]:
            response = client.post(f"{url}/predict", files={"file": ("d.png", png, "image/png")})
            ok = response.status_code == 200
            return response.status_code, response.json()["model_version"] if ok else ""

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(post, range(count)))


def metric(url: str, name: str, **labels: str) -> float:
    """One sample from the gateway's /metrics (0 when absent); labels in any order."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} (\S+)", line)
        if match and set(match.group(1).split(",")) == wanted:
            return float(match.group(2))
    return 0.0


def test_e2e_canary_takes_its_share_and_never_fails_even_without_its_label(
    canary_stack: CanaryStack,
) -> None:
    url = canary_stack.gateway.url

    # Both labels in place: about 20% go to the canary, the rest to stable.
    answers = predict_many(url, REQUESTS)

    assert {status for status, _ in answers} == {200}
    versions = Counter(version for _, version in answers)
    assert set(versions) == {STABLE, CANARY}
    assert LOWEST <= versions[CANARY] <= HIGHEST, versions
    served = metric(
        url,
        "gateway_upstream_duration_seconds_count",
        model_version=CANARY,
        outcome="ok",
        track="canary",
    )
    assert served == versions[CANARY]

    # The canary label is removed while requests flow: none fails, stable serves them all.
    def fallbacks() -> float:
        return metric(url, "gateway_canary_fallbacks_total", reason="upstream_unavailable")

    fallbacks_before = fallbacks()
    stop = threading.Event()
    during: list[tuple[int, str]] = []

    def flow() -> None:
        while not stop.is_set():
            during.extend(predict_many(url, 8))

    flowing = threading.Thread(target=flow)
    flowing.start()
    try:
        until(lambda: len(during) >= 16, "requests flowing")
        write_config(canary_stack.config, canary_stack.base, {"stable": 1})
        wait_for_label(canary_stack.serving, "canary", present=False)
        # The gateway has seen the label gone once a canary draw falls back to stable.
        until(lambda: fallbacks() > fallbacks_before, "a canary fallback")
        without_label = predict_many(url, REQUESTS)
    finally:
        stop.set()
        flowing.join()

    assert during and {status for status, _ in during} == {200}
    assert {status for status, _ in without_label} == {200}
    assert {version for _, version in without_label} == {STABLE}
    # Counted: the draws still happen, the primary answers them.
    assert fallbacks() - fallbacks_before >= LOWEST

    # The label comes back: the canary takes its share again.
    write_config(canary_stack.config, canary_stack.base, {"stable": 1, "canary": 2})
    wait_for_label(canary_stack.serving, "canary", present=True)
    # The gateway has seen it back once the canary answers a request again.
    until(lambda: (200, CANARY) in predict_many(url, 8), "an answer from the canary")
    again = Counter(version for status, version in predict_many(url, 200) if status == 200)
    assert sum(again.values()) == 200
    assert again[CANARY] >= 15


def test_e2e_feedback_stores_the_normalised_digit_and_refuses_what_it_should(
    canary_stack: CanaryStack,
) -> None:
    url = canary_stack.gateway.url
    png = drawing(7)
    predicted = httpx.post(
        f"{url}/predict?include_image=true",
        files={"file": ("seven.png", png, "image/png")},
        timeout=30,
    ).json()

    stored = httpx.post(
        f"{url}/feedback",
        files={"file": ("seven.png", png, "image/png")},
        data={
            "label": "7",
            "predicted_digit": str(predicted["predicted_digit"]),
            "model_version": predicted["model_version"],
        },
        headers={"X-Request-ID": "e2e-feedback-1"},
        timeout=30,
    )
    blank = httpx.post(
        f"{url}/feedback",
        files={"file": ("blank.png", encode(Image.new("L", (64, 64), 255)), "image/png")},
        data={"label": "3"},
        timeout=30,
    )
    out_of_range = httpx.post(
        f"{url}/feedback",
        files={"file": ("seven.png", png, "image/png")},
        data={"label": "10"},
        timeout=30,
    )

    assert stored.status_code == 201, stored.text
    item_id = stored.json()["id"]
    assert blank.status_code == 422 and "No digit found" in blank.json()["detail"]
    assert out_of_range.status_code == 422
    # Only the one item: its digit and its metadata, nothing else (no temporary files).
    assert sorted(p.name for p in canary_stack.feedback.iterdir()) == [
        f"{item_id}.json",
        f"{item_id}.png",
    ]
    metadata = json.loads((canary_stack.feedback / f"{item_id}.json").read_text())
    assert {key: metadata[key] for key in metadata if key != "created_at"} == {
        "id": item_id,
        "label": 7,
        "predicted_digit": predicted["predicted_digit"],
        "model_version": predicted["model_version"],
        "request_id": "e2e-feedback-1",
        "image": f"{item_id}.png",
    }
    digit = Image.open(canary_stack.feedback / f"{item_id}.png")
    assert (digit.mode, digit.size) == ("L", (28, 28))
    seen = base64.b64decode(predicted["normalized_image"].split(",", 1)[1])
    np.testing.assert_array_equal(np.asarray(digit), np.asarray(Image.open(io.BytesIO(seen))))
    assert (
        metric(
            url,
            "gateway_feedback_total",
            predicted_digit=str(predicted["predicted_digit"]),
            given_digit="7",
        )
        == 1
    )
