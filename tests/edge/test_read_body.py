"""read_body's deadlines: a body that comes is read, a client that pauses too long or trickles past
the total gets a 408, and a cancellation that is not the deadline's is left to its owner."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request
from starlette.types import Message

from gateway.core.errors import RequestTimeout
from gateway.edge.body import read_body


def client(parts: list[tuple[float, bytes, bool]]) -> Request:
    """A request whose body arrives as (delay before it, bytes, more to come) messages."""
    pending = list(parts)

    async def receive() -> Message:
        delay, body, more = pending.pop(0)
        await asyncio.sleep(delay)
        return {"type": "http.request", "body": body, "more_body": more}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


def not_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


async def test_a_body_that_comes_is_read_and_leaves_nothing_pending() -> None:
    assert await read_body(client([(0, b'{"a":', True), (0.01, b"1}", False)]), 1000, 1.0, 0.5) == b'{"a":1}'
    assert not_cancelling()
    await asyncio.sleep(0.6)  # past the idle deadline: nothing fires afterwards
    assert not_cancelling()


async def test_a_pause_longer_than_idle_is_a_408_between_parts() -> None:
    with pytest.raises(RequestTimeout, match="between two of its parts"):
        await read_body(client([(0, b"{", True), (1.0, b"}", False)]), 1000, 5.0, 0.1)
    assert not_cancelling()


async def test_a_trickle_past_the_total_is_a_408_in_all() -> None:
    trickle = [(0.05, b" ", True)] * 20 + [(0, b"{}", False)]
    with pytest.raises(RequestTimeout, match="in all"):
        await read_body(client(trickle), 1000, 0.3, 0.2)
    assert not_cancelling()


async def test_a_cancellation_from_elsewhere_is_not_a_408() -> None:
    reading = asyncio.ensure_future(read_body(client([(5.0, b"{}", False)]), 1000, 10.0, 10.0))
    await asyncio.sleep(0.05)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
