"""Where one /predict's CPU goes inside the gateway, step by step, in one process.

Each step runs on its own many times and its CPU time (`time.process_time`) is divided by
the runs: decoding and normalising the upload (the work itself), reading the multipart body,
the upstream call's client side (building the :predict body and request, reading the
answer; the network is an in-memory transport answering at once) and the metrics one
request writes. Then the whole app answers the same request through ASGI, in the same
process, with the same in-memory upstream: what it costs above the named steps is FastAPI's
routing, the middleware, the dependencies and the JSON answer. What a served request costs
above the whole app (bench/cpu_per_request.py measures it) is the HTTP server and the
sockets, on both sides of the gateway.

    python -m bench.gateway_steps [--runs 2000]
"""

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import orjson
from starlette.requests import Request

from bench.digits import MULTIPART, multipart, uploads
from gateway.config import DEFAULT_MAX_IMAGE_PIXELS, Settings
from gateway.main import create_app
from gateway.preprocessing import preprocess_upload
from gateway.serving_client import TFServingClient, VersionInfo
from gateway.uploads import read_form

# TF Serving's answer for one digit, as the model server gives it.
ANSWER = orjson.dumps(
    {
        "predictions": [
            {
                "probabilities": [0.001] * 7 + [0.991] + [0.001] * 2,
                "digit": 7,
                "confidence": 0.991,
                "refusal": "",
            }
        ]
    }
)
STATUS = orjson.dumps(
    {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK"}}
        ]
    }
)
METADATA = orjson.dumps(
    {
        "model_spec": {"version": "1"},
        "metadata": {"signature_def": {"signature_def": {"predict_pixels": {}}}},
    }
)


def answer_at_once(request: httpx.Request) -> httpx.Response:
    """The model server, in memory: status, metadata and :predict answers."""
    path = request.url.path
    if path.endswith(":predict"):
        return httpx.Response(200, content=ANSWER)
    if path.endswith("/metadata"):
        return httpx.Response(200, content=METADATA)
    if "/labels/" in path:
        return httpx.Response(404, content=b'{"error": "no such label"}')
    return httpx.Response(200, content=STATUS)


def cpu_ms(step: Callable[[], object], runs: int) -> float:
    step()  # first-call costs (imports, caches) are not the steady state
    started = time.process_time()
    for _ in range(runs):
        step()
    return (time.process_time() - started) * 1000 / runs


async def repeat(step: Callable[[], Awaitable[object]], runs: int) -> float:
    await step()
    started = time.process_time()
    for _ in range(runs):
        await step()
    return (time.process_time() - started) * 1000 / runs


def cpu_ms_async(step: Callable[[], Awaitable[object]], runs: int) -> float:
    return asyncio.run(repeat(step, runs))


def upload_scope(body_length: int) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"gateway"),
            (b"content-type", MULTIPART.encode()),
            (b"content-length", str(body_length).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def steps(png: bytes, runs: int) -> dict[str, float]:
    """CPU ms per upload of `png` for each step, and for the whole app in process."""
    body = multipart([png], "file")
    found: dict[str, float] = {}
    found["decode and normalise (the work)"] = cpu_ms(
        lambda: preprocess_upload(png, DEFAULT_MAX_IMAGE_PIXELS), runs
    )

    async def parse_form() -> object:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        return await read_form(Request(upload_scope(len(body)), receive))

    found["multipart body"] = cpu_ms_async(parse_form, runs)
    image = preprocess_upload(png, DEFAULT_MAX_IMAGE_PIXELS)[None]
    client = TFServingClient(
        httpx.MockTransport(answer_at_once), "http://model:8501", "mnist", httpx.Timeout(5.0)
    )
    target = VersionInfo(1, takes_pixels=True)
    found["upstream call, client side"] = cpu_ms_async(
        lambda: client.predict(image, target, "id"), runs
    )
    found["whole app in process"] = asyncio.run(whole_app_ms(body, runs))
    return found


async def whole_app_ms(body: bytes, runs: int) -> float:
    """CPU ms of one /predict through the whole ASGI app, its lifespan running."""
    app = create_app(
        Settings(_env_file=None, tf_serving_url="http://model:8501"),  # type: ignore[call-arg]
        transport=httpx.MockTransport(answer_at_once),
    )

    async def request() -> None:
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await app(upload_scope(len(body)), receive, send)
        if sent[0]["status"] != 200:
            raise SystemExit(f"error: the app answered {sent[0]['status']}: {sent[1]['body']!r}")

    async with app.router.lifespan_context(app):
        return await repeat(request, runs)


def print_steps(found: dict[str, float], served_ms: float | None = None) -> None:
    """The breakdown: the named steps, the app's own framework cost, and (given the CPU of a
    served request) what the server and sockets add."""
    named = {name: ms for name, ms in found.items() if name != "whole app in process"}
    whole = found["whole app in process"]
    framework = whole - sum(named.values())
    rows = [*named.items(), ("routing, middleware, metrics, JSON answer", framework)]
    rows.append(("= whole app in process", whole))
    if served_ms is not None:
        rows.append(("HTTP server and sockets (served - in process)", served_ms - whole))
        rows.append(("= served, CPU per request", served_ms))
    work = named["decode and normalise (the work)"]
    print("| step | CPU ms/request | x the work |")
    print("| --- | ---: | ---: |")
    for name, ms in rows:
        print(f"| {name} | {ms:.3f} | {ms / work:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    print_steps(steps(uploads()[0][1], args.runs))  # the upload cpu_per_request sends
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
