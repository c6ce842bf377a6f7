"""POST /read (gateway/routes/read.py) through the app, against a fake TF Serving: one call
with every candidate digit, the answer's shape, refusals and the route's limits."""

from collections.abc import Callable

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from contract import REFUSAL_BLANK
from gateway.reading import read_candidates
from tests.drawings import encode
from tests.gateway.conftest import FakeTFServing
from tests.gateway.helpers import errors_counted, upload
from tests.gateway.test_reading import written


def test_read_sends_every_digit_in_one_call_and_answers_the_number(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    image = written("314")
    candidates = read_candidates(image)

    response = client.post("/read", files=upload(encode(image)))

    assert response.status_code == 200
    (call,) = fake_tf_serving.predict_requests
    assert len(orjson.loads(call.content)["instances"]) == len(candidates.boxes)
    body = response.json()
    assert body["number"] == "555"  # the fake reads every digit as a 5
    assert [digit["digit"] for digit in body["digits"]] == [5, 5, 5]
    assert body["confidence"] == pytest.approx(0.91**3)
    assert body["model_version"] == "1"
    boxes = [digit["box"] for digit in body["digits"]]
    assert [box[0] for box in boxes] == sorted(box[0] for box in boxes)
    assert all(
        0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height for x0, y0, x1, y1 in boxes
    )
    metrics = client.get("/metrics").text  # counted like the other routes, digits too
    assert 'gateway_requests_total{method="POST",route="/read",status="200"} 1.0' in metrics
    assert 'gateway_predicted_digit_total{digit="5",model_version="1"} 3.0' in metrics


def test_a_page_without_a_number_is_a_422_and_no_call_upstream(
    client: TestClient, fake_tf_serving: FakeTFServing
) -> None:
    response = client.post("/read", files=upload(encode(Image.new("L", (300, 100), 255))))

    assert response.status_code == 422
    assert response.json()["detail"] == REFUSAL_BLANK
    assert not fake_tf_serving.predict_requests
    assert errors_counted(client)["no_digit"] == 1


def test_read_takes_the_upload_rules_of_predict(make_client: Callable[..., TestClient]) -> None:
    keyed = make_client(api_keys=["secret"], max_upload_bytes=10_000)
    image = encode(written("12"))

    assert keyed.post("/read", files=upload(image)).status_code == 401
    headers = {"X-API-Key": "secret"}
    assert keyed.post("/read", files=upload(image), headers=headers).status_code == 200
    too_big = keyed.post("/read", files=upload(b"x" * 20_000), headers=headers)
    assert too_big.status_code == 413
    not_image = keyed.post("/read", files=upload(b"%PDF-1.4 ..."), headers=headers)
    assert not_image.status_code == 415


def test_boxes_of_a_big_jpeg_are_in_the_uploads_own_pixels(client: TestClient) -> None:
    image = written("12", size=400)  # a JPEG this big is decoded at a fraction of its size

    response = client.post("/read", files=upload(encode(image, "JPEG", quality=90)))

    boxes = [digit["box"] for digit in response.json()["digits"]]
    ink = np.asarray(image) < 128
    for x0, y0, x1, y1 in boxes:
        assert x1 <= image.width and y1 <= image.height
        assert ink[y0:y1, x0:x1].mean() > 0.05  # the box lies on its digit's ink
    assert boxes[-1][2] > image.width / 2
