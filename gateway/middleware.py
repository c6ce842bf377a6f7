"""The gateway's one ASGI middleware: request ids, security headers, upload limits, access
log and request metrics. Pure ASGI rather than BaseHTTPMiddleware: it is on every request's
path."""

import logging
import re
import time
import uuid

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics import ERROR_KINDS, GatewayMetrics, note_error

logger = logging.getLogger("gateway.access")
REQUEST_ID_HEADER = b"x-request-id"
# Request ids travel into logs and upstream: accept only short, plain tokens.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
# Routes that read uploads: body size and in-flight limits apply to them.
LIMITED_PREFIXES = ("/predict", "/read", "/feedback")
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


class GatewayMiddleware:
    """Everything each request passes through, in one layer (it runs on every request):

    - an id (X-Request-ID when it is a short plain token, else a new one), echoed back and
      forwarded upstream, and security headers on every answer;
    - for uploads (/predict, /read, /feedback): 413 for bodies over `max_body_bytes` (before
      reading when Content-Length says so, else as soon as the stream passes it), and 503
      with Retry-After when `max_in_flight` uploads are already running, so overload
      answers fast instead of queueing;
    - one structured access-log line, request count and latency by route, and the errors
      noted while answering (`gateway.metrics.note_error`): their one writer.
    """

    def __init__(
        self, app: ASGIApp, metrics: GatewayMetrics, max_body_bytes: int, max_in_flight: int
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        detail = f"The request body is larger than {max_body_bytes} bytes; send a smaller image."
        self.too_large = orjson.dumps({"detail": detail})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        offered = headers.get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = offered if _SAFE_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        extra_headers = [*SECURITY_HEADERS, (REQUEST_ID_HEADER, request_id.encode())]
        if scope["path"].startswith("/ui"):
            extra_headers.append(PAGE_POLICY)
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        try:
            if scope["path"].startswith(LIMITED_PREFIXES):
                await self._upload(scope, receive, send_with_headers, headers)
            else:
                await self.app(scope, receive, send_with_headers)
        except Exception:
            note_error(state, "internal")  # answered by the app's 500 handler, outside
            raise
        finally:
            self._record(scope, request_id, status, time.perf_counter() - started)

    async def _upload(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]
    ) -> None:
        """An upload route: refused early when too large or when the gateway is full."""
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await self._refuse(scope, send, "too_large")
            return
        if self.in_flight >= self.max_in_flight:
            await self._refuse(scope, send, "overloaded")
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
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if not overflowed:  # whatever the app made of a cut-off body, it is a 413
                await send(message)

        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()
        if overflowed:
            await self._refuse(scope, send, "too_large")

    async def _refuse(self, scope: Scope, send: Send, kind: str) -> None:
        """413 (closing the connection: the rest of the body is not read) or 503."""
        note_error(scope["state"], kind)
        if kind == "too_large":
            status, body, header = 413, self.too_large, (b"connection", b"close")
        else:
            status, body, header = 503, AT_CAPACITY, (b"retry-after", b"1")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    header,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _record(self, scope: Scope, request_id: str, status: int, elapsed: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        metrics = self.metrics
        metrics.child(metrics.requests, template, scope["method"], str(status)).inc()
        metrics.child(metrics.latency, template).observe(elapsed)
        for kind in scope["state"].get(ERROR_KINDS, ()):
            metrics.child(metrics.errors, kind).inc()
        if logger.isEnabledFor(logging.INFO):
            line = {
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            }
            logger.info("%s", orjson.dumps(line).decode())


class BodyTooLarge(Exception):
    """Raised into the app when the streamed body passes the limit."""


AT_CAPACITY = orjson.dumps({"detail": "The gateway is at capacity; retry in a moment."})
