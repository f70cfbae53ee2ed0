"""What the client holds in memory: a stream's unread bytes, a whole body's size, and what a
compressed body decodes to, each bounded whatever the upstream sends."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable

import pytest

from gateway.core.errors import UpstreamUnreachable
from gateway.upstream.client import UpstreamClient
from tests.upstream.conftest import NewClient, Request, Respond, Server, call, response, until

Serve = Callable[[Respond], Awaitable[Server]]
PIECE = b"data: " + b"x" * 65_000 + b"\n\n"
FRAME = b"%x\r\n%b\r\n" % (len(PIECE), PIECE)


def flood(total: int, sent: list[int]) -> Respond:
    """A chunked stream of `total` bytes, written as fast as the client takes them; `sent` counts
    the bytes the socket accepted so far."""
    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(total // len(PIECE)):
            writer.write(FRAME)
            await writer.drain()
            sent[0] += len(PIECE)
        writer.write(b"0\r\n\r\n")
        return True
    return respond


async def test_a_stream_read_slowly_holds_the_upstream_back(serve: Serve, client: UpstreamClient) -> None:
    sent = [0]
    total = len(PIECE) * 1024  # 64 MiB
    server = await serve(flood(total, sent))
    stream = await client.open(call(server.url()))
    chunks = stream.chunks()
    got = len(await anext(chunks))
    await asyncio.sleep(0.5)  # a slow downstream client
    # Paused at the client's bound: what moved is that and the sockets' buffers, not the whole stream.
    held = sent[0]
    assert held < 24 << 20
    await asyncio.sleep(0.2)
    assert sent[0] - held < 1 << 20  # and it stays paused
    async for chunk in chunks:
        got += len(chunk)
    assert got == total and sent[0] == total
    await client.send(call(server.url()))  # the connection, resumed, went back to the pool
    assert server.connections == 1


async def test_an_error_body_of_a_stream_is_read_whole(serve: Serve, client: UpstreamClient) -> None:
    body = b"e" * (3 << 20)  # over a stream's buffer bound: read() must not stay paused on it

    async def failing(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(body, status=500))
        return True

    server = await serve(failing)
    stream = await client.open(call(server.url(), timeout_s=2))
    assert stream.status == 500 and await stream.read() == body


async def test_a_whole_body_over_the_limit_is_refused(serve: Serve, new_client: NewClient) -> None:
    client = await new_client(4, max_response_bytes=1 << 20)

    async def sized(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(b"b" * int(request.body)))
        return True

    server = await serve(sized)
    assert len((await client.send(call(server.url(), b"%d" % (1 << 20)))).body) == 1 << 20
    with pytest.raises(UpstreamUnreachable, match=r"deployment d1 sent a response larger than 1 MiB"):
        await client.send(call(server.url(), b"%d" % (4 << 20)))


async def test_an_endless_body_is_cut_at_the_limit(serve: Serve, new_client: NewClient) -> None:
    client = await new_client(4, max_response_bytes=1 << 20)
    sent = [0]
    server = await serve(flood(len(PIECE) * 1024, sent))
    with pytest.raises(UpstreamUnreachable, match="larger than 1 MiB"):
        await client.send(call(server.url(), timeout_s=10))
    await until(lambda: server.gone() == 1)  # the connection was dropped, not read on
    assert sent[0] < 32 << 20


async def test_a_compressed_stream_comes_in_bounded_pieces(serve: Serve, client: UpstreamClient) -> None:
    plain = 64 << 20
    packed = gzip.compress(b"\0" * plain)  # about 64 KiB that decode to 64 MiB

    async def bomb(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(packed, headers=("Content-Encoding: gzip",)))
        return True

    server = await serve(bomb)
    stream = await client.open(call(server.url()))
    sizes = [len(chunk) async for chunk in stream.chunks()]
    assert sum(sizes) == plain and max(sizes) <= 64 << 10


async def test_a_compressed_body_over_the_limit_is_refused(serve: Serve, new_client: NewClient) -> None:
    client = await new_client(4, max_response_bytes=1 << 20)

    async def packed(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(gzip.compress(b"z" * int(request.body)), headers=("Content-Encoding: gzip",)))
        return True

    server = await serve(packed)
    assert (await client.send(call(server.url(), b"%d" % (1 << 20)))).body == b"z" * (1 << 20)
    with pytest.raises(UpstreamUnreachable, match="larger than 1 MiB"):
        await client.send(call(server.url(), b"%d" % (64 << 20)))
