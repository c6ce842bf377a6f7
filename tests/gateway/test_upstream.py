"""KeepAliveTransport (gateway/upstream.py) against a real server on loopback: connections
reused, answers read whole (Content-Length or chunked), and every failure raised as the httpx
error the TF Serving client maps (connect, timeout, protocol)."""

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from gateway.serving_client import TFServingClient
from gateway.upstream import KeepAliveTransport

pytestmark = pytest.mark.anyio
LIMITS = httpx.Limits(max_keepalive_connections=8, keepalive_expiry=30.0)
STATUS = b'{"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {}}]}'
Answer = Callable[[bytes], bytes | None]  # request head -> raw answer (None: no answer)


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),  # as the gateway runs
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Both event loops: their transports fail differently on a closed connection."""
    return request.param  # type: ignore[no-any-return]


def plain(body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class Server:
    """Counts connections and requests; answers each request with `answer(head)`, then
    closes the connection when `close_after_answer`."""

    def __init__(self, answer: Answer, close_after_answer: bool = False) -> None:
        self.answer = answer
        self.close_after_answer = close_after_answer
        self.connections = 0
        self.hung_up = 0  # connections the client closed while waiting for an answer
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.heads.append(head)
                self.bodies.append(await reader.readexactly(length))
                answer = self.answer(head)
                if answer is None:  # never answers: waits for the client to hang up
                    await reader.read()
                    self.hung_up += 1
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@asynccontextmanager
async def serving(server: Server) -> AsyncIterator[str]:
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield f"http://127.0.0.1:{port}"
        listening.close()


async def get(transport: KeepAliveTransport, url: str, read_s: float = 5.0) -> httpx.Response:
    request = httpx.Request(
        "POST",
        f"{url}/v1/models/mnist:predict?x=1",
        content=b'{"instances": [1]}',
        headers={"Content-Type": "application/json"},
        extensions={"timeout": {"connect": 5.0, "read": read_s}},
    )
    return await transport.handle_async_request(request)


async def test_connections_are_reused_and_requests_sent_whole() -> None:
    server = Server(lambda head: plain(b'{"n": 1}'))
    async with serving(server) as url, KeepAliveTransport(LIMITS) as transport:
        answers = [await get(transport, url) for _ in range(3)]

    assert [a.json() for a in answers] == [{"n": 1}] * 3
    assert server.connections == 1
    assert server.heads[0].startswith(b"POST /v1/models/mnist:predict?x=1 HTTP/1.1\r\n")
    assert b"content-type: application/json" in server.heads[0].lower()
    assert server.bodies == [b'{"instances": [1]}'] * 3


async def test_chunked_answers_are_read_whole() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n"
    )
    async with serving(Server(lambda head: chunked)) as url, KeepAliveTransport(LIMITS) as t:
        answer = await get(t, url)

    assert answer.json() == {"a": 1}


async def test_connection_close_is_not_reused() -> None:
    server = Server(lambda head: plain(extra=b"Connection: close\r\n"), close_after_answer=True)
    async with serving(server) as url, KeepAliveTransport(LIMITS) as transport:
        for _ in range(2):
            assert (await get(transport, url)).status_code == 200

    assert server.connections == 2


async def test_a_server_that_closes_idle_connections_costs_no_request() -> None:
    """Closed without saying so: the next call may meet the closed connection, and the TF
    Serving client tries once more on a new one."""
    server = Server(lambda head: plain(STATUS), close_after_answer=True)
    async with serving(server) as url, KeepAliveTransport(LIMITS) as transport:
        client = TFServingClient(transport, url, "mnist", httpx.Timeout(5.0))
        statuses = [await client.model_status() for _ in range(3)]

    assert [s[0].state for s in statuses] == ["AVAILABLE"] * 3


async def test_no_answer_in_time_is_a_read_timeout_and_the_connection_is_dropped() -> None:
    answers = iter([None, plain()])
    server = Server(lambda head: next(answers))
    async with serving(server) as url, KeepAliveTransport(LIMITS) as transport:
        with pytest.raises(httpx.ReadTimeout):
            await get(transport, url, read_s=0.05)
        assert (await get(transport, url)).status_code == 200

    assert server.connections == 2


async def test_nothing_listening_is_a_connect_error() -> None:
    listening = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    listening.close()
    await listening.wait_closed()

    async with KeepAliveTransport(LIMITS) as transport:
        with pytest.raises(httpx.ConnectError):
            await get(transport, f"http://127.0.0.1:{port}")


async def test_an_answer_that_is_not_http_is_a_protocol_error() -> None:
    async with serving(Server(lambda head: b"SSH-2.0-OpenSSH\r\n\r\n")) as url:
        async with KeepAliveTransport(LIMITS) as transport:
            with pytest.raises(httpx.RemoteProtocolError):
                await get(transport, url)


async def test_a_cancelled_request_closes_its_connection() -> None:
    """A caller that gives up (a client disconnecting) leaves no half-used connection."""
    server = Server(lambda head: None)
    async with serving(server) as url, KeepAliveTransport(LIMITS) as transport:
        waiting = asyncio.create_task(get(transport, url))
        while not server.heads:
            await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        for _ in range(500):  # the server sees the hang-up within a few loop turns
            if server.hung_up:
                break
            await asyncio.sleep(0.01)

    assert server.hung_up == 1


async def test_a_server_that_closes_at_once_is_a_protocol_error_not_a_wait() -> None:
    """Accepted, then closed before the request is written (a restarting model server): the
    TF Serving client's retry needs RemoteProtocolError, at once, not a read timeout."""
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]

    def close_at_once() -> None:  # another thread, as another process would: no shared loop
        with contextlib.suppress(OSError):
            while True:
                listening.accept()[0].close()

    thread = threading.Thread(target=close_at_once, daemon=True)
    thread.start()
    try:
        async with KeepAliveTransport(LIMITS) as transport:
            # Many at once: some connections are seen closed before their request is written.
            failures = await asyncio.gather(
                *(get(transport, f"http://127.0.0.1:{port}", read_s=2.0) for _ in range(100)),
                return_exceptions=True,
            )
    finally:
        listening.shutdown(socket.SHUT_RDWR)  # wakes the thread's accept with an error
        listening.close()
        thread.join(timeout=10)

    assert not thread.is_alive()
    assert {type(failure) for failure in failures} == {httpx.RemoteProtocolError}
