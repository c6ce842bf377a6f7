"""The network under the TF Serving client: one aiohttp session of keep-alive connections,
at most GATEWAY_MAX_IN_FLIGHT of them open, each exchange bounded in time and in size.

`Send` is the seam: the client needs only status and body, so tests fake this one call."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import aiohttp

from gateway.config import Settings
from gateway.errors import UpstreamError

# (method, url, headers, body) -> (status, body). Network failures raise aiohttp's errors or
# TimeoutError; an answer over MAX_ANSWER_BYTES raises UpstreamError.
Send = Callable[[str, str, Mapping[str, str], bytes | None], Awaitable[tuple[int, bytes]]]
# The largest legitimate answer, 64 rows of 10 probabilities, is some 40 kB pretty-printed.
MAX_ANSWER_BYTES = 1024 * 1024
# Idle connections are dropped well before servers drop them (uvicorn: 5 s).
KEEPALIVE_S = 2.0


@contextlib.asynccontextmanager
async def aiohttp_send(settings: Settings) -> AsyncIterator[Send]:
    """A `Send` over one session: `GATEWAY_TIMEOUT_S` bounds each whole exchange (a server
    that trickles its answer included), `GATEWAY_CONNECT_TIMEOUT_S` each new connection."""
    timeout = aiohttp.ClientTimeout(
        total=settings.timeout_s, sock_connect=settings.connect_timeout_s
    )
    connector = aiohttp.TCPConnector(limit=settings.max_in_flight, keepalive_timeout=KEEPALIVE_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def send(
            method: str, url: str, headers: Mapping[str, str], body: bytes | None
        ) -> tuple[int, bytes]:
            # Leaving this block early (an error, a caller who gave up) closes the connection
            # when its answer is unread, so it never goes back to the pool half-used.
            async with session.request(method, url, headers=headers, data=body) as response:
                chunks, size = [], 0
                async for chunk in response.content.iter_any():
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        raise UpstreamError(
                            f"The model server's answer is larger than {MAX_ANSWER_BYTES} bytes."
                        )
                    chunks.append(chunk)
                return response.status, b"".join(chunks)

        yield send
