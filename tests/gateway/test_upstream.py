"""The TF Serving client over the real aiohttp upstream (gateway/upstream.py), against a raw
server on loopback: connections reused and capped, answers bounded in size and time, and
every network failure mapped to the contract's 502/503/504."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from gateway.config import Settings
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.serving_client import TFServingClient
from gateway.upstream import MAX_ANSWER_BYTES, aiohttp_send

pytestmark = pytest.mark.anyio
STATUS = b'{"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {}}]}'
Writer = Callable[[asyncio.StreamWriter], object]


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),  # as the gateway runs
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    return request.param  # type: ignore[no-any-return]


def head(length: int, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (length, extra)


def status(writer: asyncio.StreamWriter) -> None:
    writer.write(head(len(STATUS)) + STATUS)


class Server:
    """Answers each request with `answer(writer)`, which may write slowly; with None, never
    answers and waits for the client to hang up."""

    def __init__(self, answer: Writer | None = status, close_after_answer: bool = False) -> None:
        self.answer = answer
        self.close_after_answer = close_after_answer
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests = 0
        self.hung_up = asyncio.Event()  # the client closed a connection left unanswered

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                if self.answer is None:
                    await reader.read()
                    self.hung_up.set()
                    break
                answered = self.answer(writer)
                if asyncio.iscoroutine(answered):
                    await answered
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


@asynccontextmanager
async def client_of(server: Server, **settings: object) -> AsyncIterator[TFServingClient]:
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
    values: dict[str, object] = {"tf_serving_url": url, **settings}
    async with listening, aiohttp_send(Settings(_env_file=None, **values)) as send:  # type: ignore[arg-type, call-arg]
        yield TFServingClient(send, url, "mnist")


async def test_upstream_connections_are_reused() -> None:
    server = Server()
    async with client_of(server) as client:
        statuses = [await client.model_status() for _ in range(3)]

    assert [s[0].state for s in statuses] == ["AVAILABLE"] * 3
    assert server.connections == 1


async def test_upstream_server_closing_idle_connections_costs_no_request() -> None:
    """Closed without saying so: a call may meet the closed connection and tries again."""
    server = Server(close_after_answer=True)
    async with client_of(server) as client:
        statuses = [await client.model_status() for _ in range(3)]

    assert [s[0].state for s in statuses] == ["AVAILABLE"] * 3


async def test_upstream_open_connections_are_capped_at_max_in_flight() -> None:
    release = asyncio.Event()

    async def held(writer: asyncio.StreamWriter) -> None:
        await release.wait()
        status(writer)

    server = Server(held)
    async with client_of(server, max_in_flight=2) as client:
        calls = [asyncio.create_task(client.model_status()) for _ in range(5)]
        while server.requests < 2:
            await asyncio.sleep(0.01)
        release.set()
        answers = await asyncio.gather(*calls)

    assert len(answers) == 5
    assert server.most_open == 2


async def test_upstream_answer_over_the_limit_is_upstream_error() -> None:
    body = b" " * (MAX_ANSWER_BYTES + 1)
    async with client_of(Server(lambda writer: writer.write(head(len(body)) + body))) as client:
        with pytest.raises(UpstreamError, match="larger than"):
            await client.model_status()


async def test_upstream_trickling_answer_is_cut_at_the_timeout() -> None:
    """A byte every 20 ms for 10 s: each read is quick, the whole exchange is not."""

    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(head(500))
        for _ in range(500):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.02)

    async with client_of(Server(trickle), timeout_s=0.3) as client:
        with pytest.raises(UpstreamTimeout, match="did not answer in time"):
            await client.model_status()


async def test_upstream_nothing_listening_is_upstream_unavailable() -> None:
    listening = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
    listening.close()
    await listening.wait_closed()

    async with aiohttp_send(Settings(_env_file=None, tf_serving_url=url)) as send:  # type: ignore[call-arg]
        with pytest.raises(UpstreamUnavailable, match="unreachable"):
            await TFServingClient(send, url, "mnist").model_status()


async def test_upstream_answer_that_is_not_http_is_upstream_unavailable() -> None:
    async with client_of(Server(lambda writer: writer.write(b"SSH-2.0-OpenSSH\r\n\r\n"))) as c:
        with pytest.raises(UpstreamUnavailable, match="unreachable"):
            await c.model_status()


async def test_upstream_caller_giving_up_closes_its_connection() -> None:
    """A caller that gives up (a client disconnecting) leaves no half-used connection."""
    server = Server(None)
    async with client_of(server) as client:
        waiting = asyncio.create_task(client.model_status())
        while not server.requests:
            await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.wait_for(server.hung_up.wait(), 10)
