"""SIGTERM while a request is in flight: the request still gets its answer, new connections
are refused, and the process shuts down cleanly. Kubernetes and compose stop pods this way on
every rollout, so a lost request here is a failed user request there."""

import json
import signal
import socket
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from scripts.services import until
from tests.drawings import draw_digit, encode
from tests.e2e.conftest import Service, Stack

pytestmark = pytest.mark.e2e


def _multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "drain-test-boundary"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    )
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _send_half(service: Service, path: str, body: bytes, content_type: str) -> socket.socket:
    """Open a request and send its headers, then, once the server answers `100 Continue`
    (the application is reading the body: the request is in flight), half of its body."""
    address = urlsplit(service.url)
    connection = socket.create_connection((address.hostname, address.port), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    connection.sendall(head)
    interim = b""
    while not interim.endswith(b"\r\n\r\n"):
        chunk = connection.recv(1)
        assert chunk, f"closed before 100 Continue: {interim!r}"
        interim += chunk
    assert interim.startswith(b"HTTP/1.1 100 "), interim
    connection.sendall(body[: len(body) // 2])
    return connection


def _finish(connection: socket.socket, body: bytes) -> tuple[int, dict[str, object]]:
    """Send the rest of the body; read the whole answer (the server closes after it)."""
    connection.sendall(body[len(body) // 2 :])
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    connection.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(payload)


def _refuses_connections(url: str) -> bool:
    """True once nothing listens; a connection accepted just before then dropped is not yet."""
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        return True
    return False


def _drains_in_flight_request(
    service: Service, path: str, body: bytes, content_type: str
) -> dict[str, object]:
    assert service.process is not None
    connection = _send_half(service, path, body, content_type)

    service.process.send_signal(signal.SIGTERM)
    health = service.url + service.health_path
    until(lambda: _refuses_connections(health), "shutting down: no new connections", 30)

    assert service.process.poll() is None, "exited with a request in flight"
    status, answer = _finish(connection, body)
    assert status == 200, answer
    # uvicorn re-raises the signal once it has shut down: "ended by SIGTERM" is its clean end.
    assert service.process.wait(timeout=30) in (0, -signal.SIGTERM)
    return answer


def test_model_server_finishes_in_flight_request_on_sigterm(stack: Stack) -> None:
    image = np.zeros((28, 28, 1), dtype=np.float32)
    image[6:22, 12:16] = 1.0
    body = json.dumps({"instances": [image.tolist()]}).encode()

    answer = _drains_in_flight_request(
        stack.serving, "/v1/models/mnist:predict", body, "application/json"
    )

    predictions = answer["predictions"]
    assert isinstance(predictions, list) and len(predictions) == 1
    assert len(predictions[0]["probabilities"]) == 10


def test_gateway_finishes_in_flight_request_on_sigterm(stack: Stack) -> None:
    png = encode(draw_digit(1, size=200, height_fraction=0.6, stroke=6, dark_on_light=True))
    body, content_type = _multipart("file", "one.png", png)

    answer = _drains_in_flight_request(stack.gateway, "/predict", body, content_type)

    assert answer["model_version"] == "1"
    assert answer["predicted_digit"] in range(10)
