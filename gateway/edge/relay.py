"""Relaying a stream: watching for the client leaving, and pumping upstream bytes to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.types import Message, Receive, Send

from gateway.providers.base import StreamTranslator

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Tells nginx-like proxies in front of us not to buffer the frames.
    (b"x-accel-buffering", b"no"),
]


class DisconnectWatcher:
    """Cancels the request's task the moment the client disconnects.

    Cancelling the task, rather than closing one particular upstream response, stops whatever
    the request is waiting on (connecting, the first byte, the next chunk) and lets each
    `finally` close its upstream connection, so no upstream stream is left orphaned.
    """

    __slots__ = ("_task", "_watch", "fired")

    def __init__(self, receive: Receive) -> None:
        self.fired = False
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._watch = asyncio.ensure_future(self._run(receive))

    async def _run(self, receive: Receive) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                self.fired = True
                self._task.cancel()
                return

    def absorb(self) -> bool:
        """Inside `except CancelledError`: True (and the cancel undone) if it was our own."""
        if not self.fired:
            return False
        self._task.uncancel()
        return True

    def stop(self) -> None:
        if not self._watch.done():
            self._watch.cancel()


async def pump(
    send: Send, first: bytes, chunks: AsyncIterator[bytes], translator: StreamTranslator
) -> None:
    """Forward translated bytes as they arrive; the caller handles errors and the final frame."""
    out = translator.feed(first)
    if out:
        await send({"type": "http.response.body", "body": out, "more_body": True})
    async for chunk in chunks:
        out = translator.feed(chunk)
        if out:
            await send({"type": "http.response.body", "body": out, "more_body": True})
