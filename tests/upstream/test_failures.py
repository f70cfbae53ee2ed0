"""Timeouts and broken upstreams, each turned into the gateway's own error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from gateway.core.errors import UpstreamTimeout, UpstreamUnreachable
from gateway.upstream.client import UpstreamClient
from tests.procs import free_port
from tests.upstream.conftest import NewClient, Request, Respond, Server, call, until

Serve = Callable[[Respond], Awaitable[Server]]
HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def trickle(every_s: float, count: int, head: bytes = HEAD, finish: bool = True) -> Respond:
    """Headers, then one chunk every `every_s`; `count` of them, then the end (or a stall)."""
    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(head)
        for _ in range(count):
            await asyncio.sleep(every_s)
            writer.write(b"1\r\nx\r\n")
        if finish:
            writer.write(b"0\r\n\r\n")
        else:
            await asyncio.sleep(5)
        return True
    return respond


async def silent(request: Request, writer: asyncio.StreamWriter) -> bool:
    await asyncio.sleep(5)
    return False


async def test_no_answer_within_the_total_timeout(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(silent)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="deployment d1 did not answer within its timeout"):
        await client.send(call(server.url(), timeout_s=0.3))
    assert 0.25 < time.monotonic() - started < 1.0


async def test_the_total_timeout_bounds_the_whole_body(serve: Serve, client: UpstreamClient) -> None:
    # Bytes keep coming (no single wait is long), but the whole exchange outlasts timeout_s.
    server = await serve(trickle(0.1, 10))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="deployment d1 timed out"):
        await client.send(call(server.url(), timeout_s=0.45))
    assert 0.4 < time.monotonic() - started < 1.0


async def test_a_stream_may_outlast_its_timeout_while_bytes_keep_coming(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(trickle(0.1, 8))
    stream = await client.open(call(server.url(), timeout_s=0.3))
    assert b"".join([c async for c in stream.chunks()]) == b"x" * 8


async def test_a_stream_that_stops_sending_times_out(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(trickle(0.05, 2, finish=False))
    stream = await client.open(call(server.url(), timeout_s=0.3))
    got = []
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="deployment d1 stopped sending within its timeout"):
        async for chunk in stream.chunks():
            got.append(chunk)
    assert b"".join(got) == b"xx" and 0.3 < time.monotonic() - started < 1.0
    await until_gone(server)


async def test_a_stream_whose_headers_do_not_come_times_out(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(silent)
    with pytest.raises(UpstreamTimeout, match="did not answer within its timeout"):
        await client.open(call(server.url(), timeout_s=0.3))


async def test_refused(client: UpstreamClient) -> None:
    with pytest.raises(UpstreamUnreachable, match=r"deployment d1 is unreachable \(ConnectionRefusedError\)"):
        await client.send(call(f"http://127.0.0.1:{free_port()}/v1"))


async def test_unknown_host(client: UpstreamClient) -> None:
    with pytest.raises(UpstreamUnreachable, match=r"deployment d1 is unreachable \(gaierror\)"):
        await client.send(call("http://no-such-host.invalid/v1"))


async def test_a_url_that_is_not_http(client: UpstreamClient) -> None:
    with pytest.raises(UpstreamUnreachable, match=r"deployment d1 is unreachable \(InvalidURL\)"):
        await client.send(call("ftp://example.com/v1"))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:99999/v1",  # a port out of range
    "http://127.0.0.1:80a/v1",  # not a number
    "http://" + "\u00e4" * 64 + ".example/v1",  # a label IDNA cannot encode
    "http://[::1/v1",  # an unclosed IPv6 literal
])
async def test_a_url_that_cannot_be_sent_to(client: UpstreamClient, url: str) -> None:
    with pytest.raises(UpstreamUnreachable, match=r"^deployment d1 is unreachable \(InvalidURL\)$"):
        await client.send(call(url))


async def test_closed_before_answering(serve: Serve, client: UpstreamClient) -> None:
    async def hang_up(request: Request, writer: asyncio.StreamWriter) -> bool:
        return False

    server = await serve(hang_up)
    with pytest.raises(UpstreamUnreachable, match=r"deployment d1 is unreachable \(ServerDisconnected\)"):
        await client.send(call(server.url()))


async def test_closed_mid_body(serve: Serve, client: UpstreamClient) -> None:
    async def cut(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()
        await asyncio.sleep(0.05)
        return False

    server = await serve(cut)
    with pytest.raises(UpstreamUnreachable, match="deployment d1 closed the connection"):
        await client.send(call(server.url()))
    stream = await client.open(call(server.url()))
    with pytest.raises(UpstreamUnreachable, match="deployment d1 closed the stream early"):
        async for _ in stream.chunks():
            pass


async def test_not_http(serve: Serve, client: UpstreamClient) -> None:
    async def garbage(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await asyncio.sleep(0.5)
        return False

    server = await serve(garbage)
    with pytest.raises(UpstreamUnreachable, match=r"deployment d1 is unreachable \(HttpParser"):
        await client.send(call(server.url()))


async def test_a_timeout_leaves_no_connection_behind(serve: Serve, new_client: NewClient) -> None:
    server = await serve(silent)
    client = await new_client(1)
    with pytest.raises(UpstreamTimeout):
        await client.send(call(server.url(), timeout_s=0.2))
    await until_gone(server)
    with pytest.raises(UpstreamTimeout):  # the one slot was given back: this times out, it does not wait
        await client.send(call(server.url(), timeout_s=0.2, connect_timeout_s=5))
    assert server.connections == 2


async def until_gone(server: Server) -> None:
    await until(lambda: server.gone() >= 1)
