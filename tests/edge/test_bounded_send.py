"""BoundedSend: a write to a client that does not read is cut at its bound, by one watchdog per
stream; writes that do not wait, and cancellations that are not its own, pass as they are."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from gateway.edge.relay import BoundedSend, ClientStalled

BOUND_S = 0.2


class Client:
    """An ASGI send whose writes wait while `reading` is clear."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.reading.set()
        self.got: list[Message] = []

    async def send(self, message: Message) -> None:
        await self.reading.wait()
        self.got.append(message)


async def test_writes_that_do_not_wait_all_arrive_and_leave_no_timer_behind() -> None:
    client = Client()
    send = BoundedSend(client.send, BOUND_S)
    for n in range(100):
        await send({"type": "http.response.body", "body": b"%d" % n, "more_body": True})
    assert len(client.got) == 100
    send.close()
    await asyncio.sleep(BOUND_S * 1.5)  # nothing fires after the stream is over
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_a_write_that_waits_past_its_bound_is_a_client_stalled_and_the_task_goes_on() -> None:
    client = Client()
    send = BoundedSend(client.send, BOUND_S)
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await asyncio.sleep(BOUND_S * 0.6)
    client.reading.clear()  # the client stops reading
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(ClientStalled):
        async with asyncio.timeout(BOUND_S * 10):  # a watchdog that never fires fails, not hangs
            await send({"type": "http.response.body", "body": b"never", "more_body": True})
    waited = loop.time() - began
    # Its own bound, not the first write's (the watchdog was armed by that one).
    assert BOUND_S * 0.95 <= waited < BOUND_S * 3, waited
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0  # the cancellation was the watchdog's, taken back
    await asyncio.sleep(0)  # and nothing is left pending on the task
    send.close()


async def test_a_cancellation_that_is_not_the_watchdogs_is_not_a_stall() -> None:
    client = Client()
    client.reading.clear()
    send = BoundedSend(client.send, BOUND_S)
    writing = asyncio.ensure_future(send({"type": "http.response.body", "body": b"x", "more_body": True}))
    await asyncio.sleep(BOUND_S * 0.25)
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    send.close()
