"""Keep-alive and the connection limit: which exchanges share a connection, and which never may."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
import pytest

from gateway.core.errors import UpstreamTimeout, UpstreamUnreachable
from gateway.upstream.client import UpstreamClient
from tests.upstream.conftest import NewClient, Request, Respond, Server, call, response, until

Serve = Callable[[Respond], Awaitable[Server]]


def gated(gate: asyncio.Event) -> Respond:
    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        await gate.wait()
        writer.write(response(request.body))
        return True
    return respond


async def test_sequential_calls_share_one_connection(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(_echo)
    for i in range(3):
        reply = await client.send(call(server.url(), b'{"n":%d}' % i))
        assert reply.status == 200 and reply.body == b'{"n":%d}' % i
    assert server.connections == 1 and len(server.requests) == 3


async def test_callers_over_the_limit_wait_in_line(serve: Serve, new_client: NewClient) -> None:
    gate = asyncio.Event()
    server = await serve(gated(gate))
    client = await new_client(2)
    tasks = []
    for i in range(6):
        tasks.append(asyncio.create_task(client.send(call(server.url(), b"%d" % i))))
        await asyncio.sleep(0.01)  # queued in this order
    await until(lambda: len(server.requests) == 2)
    await asyncio.sleep(0.05)
    assert server.connections == 2 and len(server.requests) == 2  # the others wait for a connection
    gate.set()
    replies = await asyncio.gather(*tasks)
    assert [r.body for r in replies] == [b"%d" % i for i in range(6)]
    assert server.connections == 2
    assert [r.body for r in server.requests] == [b"%d" % i for i in range(6)]  # first come, first served


async def test_waiting_for_a_connection_counts_against_the_connect_timeout(serve: Serve, new_client: NewClient) -> None:
    server = await serve(gated(asyncio.Event()))  # never answers
    client = await new_client(1)
    first = asyncio.create_task(client.send(call(server.url())))
    await until(lambda: len(server.requests) == 1)
    with pytest.raises(UpstreamTimeout, match="did not answer within its timeout"):
        await client.send(call(server.url(), connect_timeout_s=0.2))
    first.cancel()


async def test_connection_close_is_not_reused(serve: Serve, client: UpstreamClient) -> None:
    async def closing(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(headers=("Connection: close",)))
        await asyncio.sleep(0.2)  # the client must not wait for our close to send the next request elsewhere
        return False

    server = await serve(closing)
    for _ in range(2):
        assert (await client.send(call(server.url()))).status == 200
    assert server.connections == 2


async def test_a_pooled_connection_the_server_closed_is_not_handed_out(serve: Serve, client: UpstreamClient) -> None:
    async def once(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response())  # keep-alive as far as the headers go, then closed
        return False

    server = await serve(once)
    assert (await client.send(call(server.url()))).status == 200
    await until(lambda: server.closed == 1)
    await asyncio.sleep(0.02)  # the client sees the close
    assert (await client.send(call(server.url()))).status == 200
    assert server.connections == 2


async def test_idle_connections_close_after_the_keepalive(serve: Serve, new_client: NewClient) -> None:
    server = await serve(_echo)
    client = await new_client(4, keepalive_s=0.1)
    await client.send(call(server.url()))
    await client.send(call(server.url()))
    assert server.closed == 0
    await until(lambda: server.closed == 1, timeout_s=1.0)
    await client.send(call(server.url()))
    assert server.connections == 2


async def test_a_stream_read_to_the_end_returns_its_connection(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(_sse)
    stream = await client.open(call(server.url()))
    assert b"".join([chunk async for chunk in stream.chunks()]) == b"data: 1\n\ndata: 2\n\n"
    stream.close()
    await client.send(call(server.url()))
    assert server.connections == 1


async def test_closing_an_unfinished_stream_aborts_its_connection(serve: Serve, client: UpstreamClient) -> None:
    async def endless(request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.headers.get("accept") == "text/event-stream":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
            await gone.wait()
            return False
        return await _echo(request, writer)

    gone = asyncio.Event()
    server = await serve(endless)
    stream = await client.open(call(server.url(), headers={"Accept": "text/event-stream"}))
    chunks = stream.chunks()
    assert await anext(chunks) == b"data: 1\n\n"
    stream.close()
    await until(lambda: server.gone() == 1)  # the upstream learns the stream ended
    gone.set()
    await client.send(call(server.url()))
    assert server.connections == 2


async def test_a_cancelled_call_does_not_leave_its_connection_in_the_pool(serve: Serve, new_client: NewClient) -> None:
    gate = asyncio.Event()
    server = await serve(gated(gate))
    client = await new_client(1)
    task = asyncio.create_task(client.send(call(server.url(), b"first")))
    await until(lambda: len(server.requests) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: server.gone() == 1)  # aborted, not kept
    gate.set()
    # The one slot is free again, and the next call gets a fresh connection and its own answer.
    reply = await asyncio.wait_for(client.send(call(server.url(), b"second")), 2)
    assert reply.body == b"second" and server.connections == 2


async def test_a_cancelled_wait_for_a_connection_gives_up_its_place(serve: Serve, new_client: NewClient) -> None:
    gate = asyncio.Event()
    server = await serve(gated(gate))
    client = await new_client(1)
    first = asyncio.create_task(client.send(call(server.url(), b"1")))
    await until(lambda: len(server.requests) == 1)
    waiting = asyncio.create_task(client.send(call(server.url(), b"2")))
    await asyncio.sleep(0.02)
    waiting.cancel()
    third = asyncio.create_task(client.send(call(server.url(), b"3")))
    await asyncio.sleep(0.02)
    gate.set()
    assert (await first).body == b"1" and (await asyncio.wait_for(third, 2)).body == b"3"
    assert [r.body for r in server.requests] == [b"1", b"3"] and server.connections == 1


async def test_closing_the_client_fails_those_waiting_at_once(serve: Serve, new_client: NewClient) -> None:
    server = await serve(gated(asyncio.Event()))  # never answers
    client = await new_client(1)
    first = asyncio.create_task(client.send(call(server.url())))
    await until(lambda: len(server.requests) == 1)
    waiting = asyncio.create_task(client.send(call(server.url(), connect_timeout_s=5)))
    await asyncio.sleep(0.02)
    started = asyncio.get_running_loop().time()
    await client.close()
    with pytest.raises(UpstreamUnreachable, match=r"deployment d1 is unreachable \(PoolClosed\)"):
        await waiting
    assert asyncio.get_running_loop().time() - started < 0.5  # not at its connect timeout
    with pytest.raises(UpstreamUnreachable):
        await first


async def _echo(request: Request, writer: asyncio.StreamWriter) -> bool:
    writer.write(response(request.body))
    return True


async def _sse(request: Request, writer: asyncio.StreamWriter) -> bool:
    events = [orjson.dumps(1), orjson.dumps(2)]
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    for event in events:
        data = b"data: " + event + b"\n\n"
        writer.write(b"%x\r\n%b\r\n" % (len(data), data))
        await writer.drain()
        await asyncio.sleep(0.01)
    writer.write(b"0\r\n\r\n")
    return True


async def test_an_idle_connection_to_another_host_makes_room(serve: Serve, new_client: NewClient) -> None:
    a, b = await serve(_echo), await serve(_echo)
    client = await new_client(1)
    await client.send(call(a.url(), b"a"))
    reply = await client.send(call(b.url(), b"b", connect_timeout_s=0.5))  # not a wait for a's idle connection
    assert reply.body == b"b"
    await until(lambda: a.closed == 1)
    assert (a.connections, b.connections) == (1, 1)


async def test_a_caller_of_another_host_gets_the_freed_slot(serve: Serve, new_client: NewClient) -> None:
    gate = asyncio.Event()
    a, b = await serve(gated(gate)), await serve(_echo)
    client = await new_client(1)
    held = asyncio.create_task(client.send(call(a.url(), b"a")))
    await until(lambda: len(a.requests) == 1)
    waiting = asyncio.create_task(client.send(call(b.url(), b"b")))
    await asyncio.sleep(0.05)
    assert b.connections == 0  # the limit holds across hosts
    gate.set()
    assert (await held).body == b"a" and (await asyncio.wait_for(waiting, 2)).body == b"b"
    await until(lambda: a.closed == 1)  # a's connection closed to give its slot away, not kept idle
