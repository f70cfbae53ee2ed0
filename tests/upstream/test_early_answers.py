"""An upstream that answers before an upload is all sent: the answer stands at once, the rest of the
body is not sent, and the connection, mid-request on the upstream's side, is never reused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from gateway.core.errors import UpstreamTimeout
from gateway.upstream.client import UpstreamClient
from tests.upstream.conftest import NewClient, call, response

SIZE = 32 << 20  # more than the socket buffers hold


async def _big() -> AsyncIterator[bytes]:
    for _ in range(SIZE // 65536):
        yield b"x" * 65536


Handle = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]
Start = Callable[[Handle], Coroutine[Any, Any, int]]


def _upload(port: int) -> tuple[str, dict[str, str]]:
    return f"http://127.0.0.1:{port}/v1/audio/transcriptions", {"Content-Length": str(SIZE)}


def refusing(connections: list[int]) -> Handle:
    """Answers 413 once the head is in, keeps the connection open, and reads nothing more."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response(b"no", status=413))
        await writer.drain()
        await asyncio.sleep(10)
    return handle


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Starts a server with a raw handler (it may answer before the request is read); its port."""
    servers: list[asyncio.Server] = []

    async def run(handle: Handle) -> int:
        s = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(s)
        return int(s.sockets[0].getsockname()[1])

    yield run
    for s in servers:
        s.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_an_early_refusal_is_seen_while_the_upload_is_blocked(start: Start, client: UpstreamClient,
                                                                    stream: bool) -> None:
    url, headers = _upload(await start(refusing([0])))
    started = time.monotonic()
    opened = await asyncio.wait_for(client.open(call(url, _big, headers=headers, timeout_s=3.0), stream=stream), 5)
    assert (opened.status, await opened.read()) == (413, b"no")
    assert time.monotonic() - started < 1.0  # not at the timeout: the answer was in at once


async def test_a_blocked_stream_upload_times_out(start: Start, client: UpstreamClient) -> None:
    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)  # reads nothing, answers nothing

    url, headers = _upload(await start(stalled))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="deployment d1 did not answer within its timeout"):
        await asyncio.wait_for(client.open(call(url, _big, headers=headers, timeout_s=0.3)), 5)
    assert time.monotonic() - started < 1.5


async def test_a_chunked_upload_answered_early_is_not_reused(start: Start, new_client: NewClient) -> None:
    client = await new_client(1)
    after: list[bytes] = []
    connections = [0]

    async def early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response(b"ok"))
        await writer.drain()
        try:
            while data := await asyncio.wait_for(reader.read(65536), 1):
                after.append(data)  # what the client sent after the answer, on this connection
        except TimeoutError:
            pass

    async def body() -> AsyncIterator[bytes]:
        yield b"abc"
        await asyncio.sleep(0.2)  # the answer comes meanwhile

    port = await start(early)
    url = f"http://127.0.0.1:{port}/x"
    assert (await client.send(call(url, body))).body == b"ok"
    # The next request goes on a new connection, not after the unfinished chunked body.
    assert (await client.send(call(url, timeout_s=1.5))).body == b"ok"
    assert connections[0] == 2 and b"POST" not in b"".join(after)


async def test_a_refused_upload_is_not_reused(start: Start, new_client: NewClient) -> None:
    client = await new_client(1)
    connections = [0]
    url, headers = _upload(await start(refusing(connections)))
    for _ in range(2):
        reply = await asyncio.wait_for(client.send(call(url, _big, headers=headers)), 2)
        assert (reply.status, reply.body) == (413, b"no")
    assert connections[0] == 2
