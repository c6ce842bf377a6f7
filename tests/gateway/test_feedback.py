"""POST /feedback: what it stores under GATEWAY_FEEDBACK_DIR, and what it refuses."""

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from gateway.errors import FeedbackStoreFull
from gateway.feedback import FeedbackStore
from tests.drawings import draw_digit, encode
from tests.gateway.conftest import FakeTFServing

PNG = encode(draw_digit(7, size=120, stroke=3, dark_on_light=True))
BLANK = encode(draw_digit(0, size=64).point(lambda _: 255))


def send(
    client: TestClient, data: bytes = PNG, headers: dict[str, str] | None = None, **fields: str
) -> httpx.Response:
    """POST /feedback with the image as field `file` and `fields` as form fields."""
    files = {"file": ("digit.png", data, "image/png")}
    return client.post("/feedback", files=files, data=fields, headers=headers)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "feedback"


@pytest.fixture
def client(make_client: Callable[..., TestClient], folder: Path) -> TestClient:
    return make_client(feedback_dir=folder)


def test_feedback_stores_normalised_digit_and_one_json_line(
    client: TestClient, folder: Path, fake_tf_serving: FakeTFServing
) -> None:
    response = send(
        client, label="1", predicted_digit="7", model_version="3", headers={"X-Request-ID": "req-7"}
    )

    assert response.status_code == 201
    item_id = response.json()["id"]
    assert len(item_id) == 32 and int(item_id, 16) >= 0
    assert sorted(p.name for p in folder.iterdir()) == [f"{item_id}.json", f"{item_id}.png"]
    text = (folder / f"{item_id}.json").read_text()
    assert text.endswith("\n") and text.count("\n") == 1
    metadata = json.loads(text)
    assert metadata == {
        "id": item_id,
        "label": 1,
        "predicted_digit": 7,
        "model_version": "3",
        "created_at": metadata["created_at"],
        "request_id": "req-7",
        "image": f"{item_id}.png",
    }
    assert metadata["created_at"].endswith("Z") and metadata["created_at"][:2] == "20"
    assert fake_tf_serving.requests == []  # feedback never calls the model


def test_feedback_png_is_the_28x28_digit_predict_saw(client: TestClient, folder: Path) -> None:
    seen = client.post("/predict?include_image=true", files={"file": ("d.png", PNG, "image/png")})

    item_id = send(client, label="7").json()["id"]

    stored = Image.open(folder / f"{item_id}.png")
    assert (stored.format, stored.mode, stored.size) == ("PNG", "L", (28, 28))
    pixels = np.asarray(stored)
    assert pixels[0].max() == 0 and pixels.max() > 200  # white digit on black, like MNIST
    predicted_png = base64.b64decode(seen.json()["normalized_image"].split(",", 1)[1])
    np.testing.assert_array_equal(pixels, np.asarray(Image.open(io.BytesIO(predicted_png))))


def test_feedback_never_stores_the_upload(client: TestClient, folder: Path) -> None:
    big = encode(draw_digit(3, size=400, stroke=8, dark_on_light=True).convert("RGB"), "JPEG")

    item_id = send(client, big, label="3").json()["id"]

    assert [p.suffix for p in sorted(folder.iterdir())] == [".json", ".png"]
    assert all(big not in p.read_bytes() for p in folder.iterdir())
    assert Image.open(folder / f"{item_id}.png").size == (28, 28)


def test_feedback_optional_fields_are_null(client: TestClient, folder: Path) -> None:
    item_id = send(client, label="0").json()["id"]

    metadata = json.loads((folder / f"{item_id}.json").read_text())
    assert metadata["predicted_digit"] is None and metadata["model_version"] is None
    assert len(metadata["request_id"]) == 32  # made by the gateway


def test_feedback_disabled_is_404_saying_how_to_enable(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()

    response = send(client, label="4")

    assert response.status_code == 404
    assert "set GATEWAY_FEEDBACK_DIR" in response.json()["detail"]


def test_feedback_disabled_is_404_before_fields_are_checked(
    make_client: Callable[..., TestClient],
) -> None:
    response = send(make_client(), b"junk", label="42")

    assert response.status_code == 404


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"label": "10"}, id="label-10"),
        pytest.param({"label": "-1"}, id="label-negative"),
        pytest.param({"label": "seven"}, id="label-word"),
        pytest.param({}, id="label-missing"),
        pytest.param({"label": "1", "predicted_digit": "12"}, id="predicted-out-of-range"),
        pytest.param({"label": "1", "model_version": "../3"}, id="version-not-a-number"),
        pytest.param({"label": "1", "model_version": "1" * 20}, id="version-too-long"),
        pytest.param({"label": "1", "model_version": "0"}, id="version-zero"),
    ],
)
def test_feedback_bad_fields_are_422_and_store_nothing(
    client: TestClient, folder: Path, fields: dict[str, str]
) -> None:
    response = send(client, **fields)

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("data", "status", "phrase"),
    [
        pytest.param(BLANK, 422, "No digit found", id="no-digit"),
        pytest.param(b"just some text", 400, "not a readable image", id="not-an-image"),
        pytest.param(b"%PDF-1.4 ...", 415, "PDF", id="pdf"),
    ],
)
def test_feedback_bad_images_store_nothing(
    client: TestClient, folder: Path, data: bytes, status: int, phrase: str
) -> None:
    response = send(client, data, label="2")

    assert response.status_code == status
    assert phrase in response.json()["detail"]
    assert list(folder.iterdir()) == []


def test_feedback_has_the_upload_size_limit(
    make_client: Callable[..., TestClient], folder: Path
) -> None:
    client = make_client(feedback_dir=folder, max_upload_bytes=2048)
    big = encode(draw_digit(3, size=400, dark_on_light=True), "BMP")

    response = send(client, big, label="3")

    assert response.status_code == 413
    assert list(folder.iterdir()) == []


def test_feedback_has_the_pixel_limit(make_client: Callable[..., TestClient], folder: Path) -> None:
    client = make_client(feedback_dir=folder, max_image_pixels=100 * 100)

    response = send(client, encode(draw_digit(4, size=101)), label="4")

    assert response.status_code == 413
    assert list(folder.iterdir()) == []


def test_feedback_needs_the_api_key(make_client: Callable[..., TestClient], folder: Path) -> None:
    client = make_client(feedback_dir=folder, api_keys=["s3cret"])

    refused = send(client, label="5")
    accepted = send(client, label="5", headers={"X-API-Key": "s3cret"})

    assert refused.status_code == 401
    assert accepted.status_code == 201
    assert len(list(folder.glob("*.json"))) == 1


def test_feedback_counted_by_predicted_and_given_digit(client: TestClient) -> None:
    send(client, label="1", predicted_digit="7")
    send(client, label="1", predicted_digit="7")
    send(client, label="4")

    text = client.get("/metrics").text

    assert 'gateway_feedback_total{given_digit="1",predicted_digit="7"} 2.0' in text
    assert 'gateway_feedback_total{given_digit="4",predicted_digit="none"} 1.0' in text


def test_feedback_folder_is_created_at_startup(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    folder = tmp_path / "a" / "b"

    make_client(feedback_dir=folder)

    assert folder.is_dir()


def test_feedback_folder_that_cannot_be_made_fails_startup_naming_the_variable(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("not a folder")

    with pytest.raises(RuntimeError, match="GATEWAY_FEEDBACK_DIR="):
        make_client(feedback_dir=tmp_path / "file" / "feedback")


def test_feedback_write_failure_is_503_and_leaves_nothing(client: TestClient, folder: Path) -> None:
    folder.rmdir()
    folder.write_text("the folder became a file")

    response = send(client, label="6")

    assert response.status_code == 503
    assert "could not be stored" in response.json()["detail"]
    assert [p.name for p in folder.parent.iterdir()] == ["feedback"]


def test_feedback_a_half_written_item_is_removed(
    client: TestClient, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.feedback

    real_replace = gateway.feedback.os.replace

    def fail_on_json(source: str, target: str) -> None:
        if str(target).endswith(".json"):
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(gateway.feedback.os, "replace", fail_on_json)

    response = send(client, label="6")

    assert response.status_code == 503
    assert list(folder.iterdir()) == []


def test_ui_settings_tell_the_page_whether_feedback_is_on(
    make_client: Callable[..., TestClient], folder: Path
) -> None:
    assert make_client().get("/ui/settings").json()["feedback_enabled"] is False
    assert make_client(feedback_dir=folder).get("/ui/settings").json()["feedback_enabled"] is True


def test_feedback_page_has_the_control(client: TestClient) -> None:
    page = client.get("/ui/")
    script = client.get("/ui/app.js")

    assert 'id="feedback"' in page.text and "That's wrong, it was:" in page.text
    assert "../feedback" in script.text and "feedback_enabled" in script.text


def test_openapi_documents_feedback(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/feedback"]["post"]

    assert {"201", "400", "401", "404", "413", "415", "422", "503", "507"} == set(
        operation["responses"]
    )
    assert "200" not in operation["responses"]


def test_feedback_folder_problem_stops_the_command_before_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.__main__ import main

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("GATEWAY_FEEDBACK_DIR", str(tmp_path / "file" / "feedback"))

    assert main(["--port", "0"]) == 2
    assert "GATEWAY_FEEDBACK_DIR=" in capsys.readouterr().err


def test_feedback_past_the_cap_is_507_and_loses_nothing(
    make_client: Callable[..., TestClient], folder: Path
) -> None:
    client = make_client(feedback_dir=folder, feedback_max_items=2)
    kept = [send(client, label="7").json()["id"] for _ in range(2)]
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    refused = send(client, label="7")

    assert refused.status_code == 507
    assert refused.json()["detail"].startswith(
        "The feedback store is full: it holds its limit of 2 corrections"
    )
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    # Once an operator collects some, corrections are stored again.
    for suffix in (".json", ".png"):
        (folder / f"{kept[0]}{suffix}").unlink()
    assert send(client, label="7").status_code == 201


def test_feedback_cap_holds_across_processes_sharing_the_folder(folder: Path) -> None:
    folder.mkdir()
    stores = [FeedbackStore(folder, max_items=3) for _ in range(2)]  # as two workers
    digit = np.zeros((28, 28), np.float32)
    outcomes = []
    for store in stores * 3:
        try:
            store.save(digit, label=1, predicted_digit=None, model_version=None, request_id="r")
            outcomes.append("stored")
        except FeedbackStoreFull:
            outcomes.append("full")

    assert outcomes == ["stored"] * 3 + ["full"] * 3
    assert len(list(folder.glob("*.json"))) == 3
