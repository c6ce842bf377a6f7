"""A fake TF Serving at the upstream seam, and gateway clients wired to it."""

import base64
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from contract import SIGNATURE_PIXELS
from gateway.config import Settings
from gateway.main import create_app
from tests.gateway.helpers import httpx_send


@dataclass
class FakeTFServing:
    """Answers like TF Serving's REST API for model `mnist`; tests change its state."""

    versions: dict[int, str] = field(default_factory=lambda: {1: "AVAILABLE"})
    labels: dict[str, int] = field(default_factory=dict)
    predicted_digit: int = 5
    # Versions exported before the raw-pixel signature existed take JSON floats only.
    without_pixels: set[int] = field(default_factory=set)
    failure: Callable[[httpx.Request], httpx.Response] | None = None
    requests: list[httpx.Request] = field(default_factory=list)

    def status_body(self, versions: list[int]) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "model_version_status": [
                    {
                        "version": str(v),
                        "state": self.versions[v],
                        "status": {"error_code": "OK", "error_message": ""},
                    }
                    for v in versions
                ]
            },
        )

    def images(self, body: dict[str, object], version: int) -> np.ndarray | httpx.Response:
        """The [n, 28, 28, 1] images of a :predict body, in either signature's form."""
        if body.get("signature_name") == SIGNATURE_PIXELS and version not in self.without_pixels:
            rows = [base64.b64decode(item["b64"]) for item in body["instances"]]  # type: ignore[attr-defined, index]
            if any(len(row) != 28 * 28 for row in rows):
                return httpx.Response(400, json={"error": "pixels must be 784 bytes"})
            pixels = np.frombuffer(b"".join(rows), np.uint8).reshape(-1, 28, 28, 1)
            return pixels.astype(np.float32) / 255
        if "signature_name" in body:
            return httpx.Response(400, json={"error": f"no signature {body['signature_name']}"})
        instances = np.asarray(body["instances"], dtype=np.float32)
        if instances.shape[1:] != (28, 28, 1):
            return httpx.Response(400, json={"error": f"bad shape {instances.shape}"})
        return instances

    def metadata(self, version: int) -> httpx.Response:
        signatures = {"serving_default": {}, "predict_image_bytes": {}}
        if version not in self.without_pixels:
            signatures[SIGNATURE_PIXELS] = {}
        return httpx.Response(
            200,
            json={
                "model_spec": {"name": "mnist", "signature_name": "", "version": str(version)},
                "metadata": {"signature_def": {"signature_def": signatures}},
            },
        )

    def predictions(self, request: httpx.Request, version: int) -> httpx.Response:
        if self.versions.get(version) != "AVAILABLE":
            return httpx.Response(
                404, json={"error": f"Servable not found for request: Specific(mnist, {version})"}
            )
        instances = self.images(orjson.loads(request.content), version)
        if isinstance(instances, httpx.Response):
            return instances
        probabilities = np.full(10, 0.01, np.float32)
        probabilities[self.predicted_digit] = 0.91
        return httpx.Response(
            200,
            json={
                "predictions": [
                    {
                        "probabilities": probabilities.tolist(),
                        "digit": self.predicted_digit,
                        "confidence": 0.91,
                    }
                    for _ in instances
                ]
            },
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failure is not None:
            return self.failure(request)
        path = request.url.path
        if request.method == "POST" and path.startswith("/v1/models/mnist/versions/"):
            version = int(path.removeprefix("/v1/models/mnist/versions/").split(":")[0])
            return self.predictions(request, version)
        if request.method == "GET" and path == "/v1/models/mnist":
            if not self.versions:
                return httpx.Response(
                    404, json={"error": "Could not find any versions of model mnist"}
                )
            return self.status_body(sorted(self.versions))
        if request.method == "GET" and path.startswith("/v1/models/mnist/versions/"):
            return self.version_resource(path)
        if request.method == "GET" and path.startswith("/v1/models/mnist/labels/"):
            return self.label_resource(path)
        return httpx.Response(404, json={"error": f"Servable not found for request: {path}"})

    def version_resource(self, path: str) -> httpx.Response:
        """GET /v1/models/mnist/versions/<n>[/metadata]."""
        version = int(path.removeprefix("/v1/models/mnist/versions/").split("/")[0])
        if path.endswith("/metadata"):
            if self.versions.get(version) != "AVAILABLE":
                return httpx.Response(
                    404,
                    json={"error": f"Servable not found for request: Specific(mnist, {version})"},
                )
            return self.metadata(version)
        if version not in self.versions:
            return httpx.Response(
                404, json={"error": f"Could not find version {version} of model mnist"}
            )
        return self.status_body([version])

    def label_resource(self, path: str) -> httpx.Response:
        """GET /v1/models/mnist/labels/<label>[/metadata]."""
        label = path.removeprefix("/v1/models/mnist/labels/").removesuffix("/metadata")
        if not path.endswith("/metadata"):
            return self.status_body(sorted(self.versions))  # TF Serving ignores the label
        if label not in self.labels:
            return httpx.Response(
                400, json={"error": f"Unrecognized servable version label: {label}"}
            )
        version = self.labels[label]
        if self.versions.get(version) != "AVAILABLE":
            return httpx.Response(
                404,
                json={"error": f"Servable not found for request: Specific(mnist, {version})"},
            )
        return self.metadata(version)

    @property
    def predict_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST"]


@pytest.fixture(autouse=True)
def no_env_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Settings() in a gateway test reads a .env file, the gateway's own (its command,
    get_settings) included: a developer's would change what the tests see. GATEWAY_*
    variables are cleared for the whole session (tests/conftest.py)."""
    monkeypatch.setitem(Settings.model_config, "env_file", None)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (`pytest.mark.anyio`) run on asyncio, as the gateway does."""
    return "asyncio"


@pytest.fixture
def fake_tf_serving() -> FakeTFServing:
    return FakeTFServing()


@pytest.fixture
def make_client(
    fake_tf_serving: FakeTFServing,
) -> Iterator[Callable[..., TestClient]]:
    """Builds a gateway TestClient (lifespan running) with settings overrides, and the
    canary's random draws when a test sets them."""
    opened: list[TestClient] = []

    def make(*, draw: Callable[[], float] = random.random, **overrides: object) -> TestClient:
        values: dict[str, object] = {
            "tf_serving_url": "http://tf-serving:8501",
            "version_cache_s": 0,
            **overrides,
        }
        settings = Settings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]
        upstream = httpx_send(fake_tf_serving)
        client = TestClient(create_app(settings, upstream=upstream, draw=draw))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
