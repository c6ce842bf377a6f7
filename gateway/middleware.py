"""ASGI middleware: request ids, access logs and metrics; body-size and load limits.

Pure ASGI rather than BaseHTTPMiddleware: it sits on every request's hot path.
"""

import logging
import re
import time
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics import GatewayMetrics

logger = logging.getLogger("gateway.access")
REQUEST_ID_HEADER = b"x-request-id"
# Request ids travel into logs and upstream: accept only short, plain tokens.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
# Routes that read uploads: body size and in-flight limits apply to them.
LIMITED_PREFIXES = ("/predict", "/feedback")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
# The page loads nothing from elsewhere; /docs (Swagger UI from a CDN) is left without it.
PAGE_POLICY = (
    b"content-security-policy",
    b"default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    b"connect-src 'self'; frame-ancestors 'none'",
)


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    content = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


class RequestContextMiddleware:
    """Gives each request an id (X-Request-ID, sanitised, or a new one) and security
    headers, then logs one structured line and records count and latency by route."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = offered if _SAFE_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        extra_headers = [*SECURITY_HEADERS, (REQUEST_ID_HEADER, request_id.encode())]
        if scope["path"].startswith("/ui"):
            extra_headers.append(PAGE_POLICY)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, scope["method"], str(status)).inc()
            self.metrics.latency.labels(template).observe(elapsed)
            logger.info(
                "%s",
                orjson.dumps(
                    {
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    }
                ).decode(),
            )


class LimitsMiddleware:
    """413 for bodies over `max_body_bytes` (before reading when Content-Length says so,
    else as soon as the stream passes it); 503 with Retry-After when `max_in_flight`
    uploads (predictions and feedback) are already running, so overload answers fast
    instead of queueing."""

    def __init__(
        self, app: ASGIApp, metrics: GatewayMetrics, max_body_bytes: int, max_in_flight: int
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    def _too_large(self) -> dict[str, str]:
        return {
            "detail": f"The request body is larger than {self.max_body_bytes} bytes; "
            "send a smaller image."
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(LIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            self.metrics.errors.labels("too_large").inc()
            await _send_json(send, 413, self._too_large(), [(b"connection", b"close")])
            return
        if self.in_flight >= self.max_in_flight:
            self.metrics.errors.labels("overloaded").inc()
            await _send_json(
                send,
                503,
                {"detail": "The gateway is at capacity; retry in a moment."},
                [(b"retry-after", b"1")],
            )
            return

        received = 0
        overflowed = False

        async def counting_receive() -> Message:
            nonlocal received, overflowed
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    overflowed = True
                    raise ValueError("request body over the limit")
            return message

        replaced = False

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if overflowed:
                # Whatever the app made of the cut-off body, the answer is 413.
                if not replaced:
                    replaced = True
                    self.metrics.errors.labels("too_large").inc()
                    await _send_json(send, 413, self._too_large(), [(b"connection", b"close")])
                return
            await send(message)

        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, counting_receive, guarded_send)
        except ValueError:
            if not overflowed:
                raise
            await guarded_send({"type": "http.response.start", "status": 413})
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()
