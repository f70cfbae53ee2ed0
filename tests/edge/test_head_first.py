"""HeadFirst: a response's head goes out in one write with what follows it in the same event-loop
iteration, and is never held longer than that iteration, nor past a close. On a real socket pair:
what the peer can read shows what was written."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from gateway.edge.protocol import HeadFirst

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


@pytest.fixture
async def pair() -> AsyncIterator[tuple[asyncio.Transport, socket.socket]]:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    yield transport, peer
    transport.abort()
    peer.close()


def readable(peer: socket.socket) -> bytes:
    try:
        return peer.recv(65536)
    except BlockingIOError:
        return b""


async def test_the_head_waits_for_the_body_and_both_go_out_in_one_write(
    pair: tuple[asyncio.Transport, socket.socket],
) -> None:
    transport, peer = pair
    out = HeadFirst(transport, asyncio.get_running_loop())
    out.write(HEAD)
    assert readable(peer) == b""  # held: not on the socket yet
    out.write(b"{}")
    assert readable(peer) == HEAD + b"{}"  # one write: the peer reads it whole, at once
    out.write(b"more")
    assert readable(peer) == b"more"  # after the head, writes go straight out


async def test_a_head_alone_goes_out_at_the_end_of_the_iteration(
    pair: tuple[asyncio.Transport, socket.socket],
) -> None:
    transport, peer = pair
    out = HeadFirst(transport, asyncio.get_running_loop())
    out.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it before sending its body
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert readable(peer) == b"HTTP/1.1 100 Continue\r\n\r\n"
    out.write(HEAD)
    assert readable(peer) == HEAD  # the first write only is held; this one is not


async def test_close_sends_what_is_held_first(pair: tuple[asyncio.Transport, socket.socket]) -> None:
    transport, peer = pair
    out = HeadFirst(transport, asyncio.get_running_loop())
    out.write(HEAD)
    out.close()
    assert out.is_closing()
    got = b""
    for _ in range(50):
        await asyncio.sleep(0.01)
        got += readable(peer)
        if got == HEAD:
            break
    assert got == HEAD
