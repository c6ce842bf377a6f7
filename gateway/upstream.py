"""The network under the TF Serving client: HTTP/1.1 keep-alive connections to the model
server, each answer parsed by httptools (the C parser uvicorn serves with), behind httpx's
transport API (the seam tests fake with httpx.MockTransport).

Why not a general-purpose client: the gateway calls one host with small requests whose
answers are whole JSON documents, and the client's CPU is a large share of a gateway whose
own work is 0.6 ms per upload. aiohttp under httpx took twice this transport's CPU per
:predict, and the gateway's CPU per upload fell by a fifth when this replaced it
(docs/benchmarks.md). What it leaves out: HTTP/2, proxies, redirects, cookies, and answers
that end only when the connection closes (TF Serving and the local model server always send
Content-Length or chunks).
"""

import asyncio
import math
import ssl
import time
from typing import cast

import httptools
import httpx


class _Connection(asyncio.Protocol):
    """One connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self.reusable = True
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"The model server's answer is not HTTP: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        why = f": {exc}" if exc else ""
        self._fail(httpx.RemoteProtocolError(f"The model server closed the connection{why}."))

    # httptools' callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer, self._answer = self._answer, None
        self.reusable = self.reusable and self._parser.should_keep_alive()
        if answer is not None and not answer.done():
            status = self._parser.get_status_code()
            answer.set_result((status, self._headers, b"".join(self._body)))

    def _fail(self, exc: Exception) -> None:
        self.close()
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(exc)

    async def exchange(
        self, request: bytes, timeout: float | None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send one request and wait for its whole answer (status, headers, body)."""
        assert self._transport is not None
        if not self.reusable or self._transport.is_closing():
            # Closed by the server between connecting (or idling) and now.
            raise httpx.RemoteProtocolError("The model server closed the connection.")
        self._headers, self._body = [], []
        answer: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]]
        self._answer = answer = self._loop.create_future()
        try:
            self._transport.write(request)
        except (RuntimeError, OSError) as exc:  # uvloop raises on a transport it closed
            self._answer = None
            self.close()
            raise httpx.RemoteProtocolError(
                f"The model server closed the connection: {exc}"
            ) from exc
        timer = None
        if timeout is not None:
            timer = self._loop.call_later(
                timeout, self._fail, httpx.ReadTimeout("The model server did not answer in time.")
            )
        try:
            return await answer
        finally:
            if timer is not None:
                timer.cancel()

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """Idle connections per host, most recently used first; as many open at once as there
    are requests in flight (the gateway's GATEWAY_MAX_IN_FLIGHT bounds those)."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._max_idle = limits.max_keepalive_connections
        self._keepalive_s = limits.keepalive_expiry
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        where = (url.scheme, url.host, port)
        timeouts = request.extensions.get("timeout", {})
        connection = self._idle_connection(where) or await self._connect(
            where, timeouts.get("connect")
        )
        head = [request.method.encode(), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        try:
            status, headers, body = await connection.exchange(
                b"".join(head) + request.content, timeouts.get("read")
            )
        except BaseException:  # a failure, or the caller gave up: the answer may still come
            connection.close()
            raise
        idle = self._idle.setdefault(where, [])
        room = self._max_idle is None or len(idle) < self._max_idle
        if connection.reusable and room and not self._closed:
            connection.idle_since = time.monotonic()
            idle.append(connection)
        else:
            connection.close()
        return httpx.Response(status, headers=headers, content=body, request=request)

    def _idle_connection(self, where: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(where)
        oldest_usable = -math.inf  # no keepalive_expiry: idle connections never expire
        if self._keepalive_s is not None:
            oldest_usable = time.monotonic() - self._keepalive_s
        while idle:
            connection = idle.pop()
            if connection.reusable and connection.idle_since >= oldest_usable:
                return connection
            connection.close()
        return None

    async def _connect(self, where: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = where
        loop = asyncio.get_running_loop()
        tls = None
        if scheme == "https":
            tls = self._tls = self._tls or ssl.create_default_context()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), host, port, ssl=tls), timeout
            )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"Connecting to {host}:{port} timed out.") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"Cannot connect to {host}:{port}: {exc}") from exc
        return connection
