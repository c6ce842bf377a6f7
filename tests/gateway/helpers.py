"""Uploads, metric readings and the fake upstream seam shared by the gateway's tests."""

import inspect
from collections.abc import Awaitable, Callable, Mapping

import httpx
from fastapi.testclient import TestClient

from gateway.upstream import Send
from tests.drawings import draw_digit, encode

# A clear, dark-on-light 5: every route test's default upload.
PNG = encode(draw_digit(5, size=120, stroke=3, dark_on_light=True))


def upload(
    data: bytes = PNG, name: str = "digit.png", content_type: str = "image/png"
) -> dict[str, tuple[str, bytes, str]]:
    """The `files=` of a POST /predict: the image as field 'file'."""
    return {"file": (name, data, content_type)}


def errors_counted(client: TestClient) -> dict[str, float]:
    """gateway_errors_total by kind, as a scrape reads it."""
    counted: dict[str, float] = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("gateway_errors_total{"):
            labels, value = line.rsplit(" ", 1)
            counted[labels.split('kind="')[1].split('"')[0]] = float(value)
    return counted


Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def httpx_send(handler: Handler) -> Send:
    """The gateway's upstream `Send` answered by `handler`, which sees each call as an
    httpx.Request: fakes of TF Serving stay plain request -> response functions."""

    async def send(
        method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, bytes]:
        answer = handler(httpx.Request(method, url, headers=headers, content=body))
        if inspect.isawaitable(answer):
            answer = await answer
        return answer.status_code, answer.content

    return send
