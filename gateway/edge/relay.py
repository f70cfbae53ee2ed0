"""Relaying a stream: watching for the client leaving, and pumping upstream bytes to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

from starlette.types import Message, Receive, Scope, Send

from gateway.core.errors import GatewayError
from gateway.core.types import StreamTranslator
from gateway.edge.protocol import ON_DISCONNECT

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Tells nginx-like proxies in front of us not to buffer the frames.
    (b"x-accel-buffering", b"no"),
]


def sse_head(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """A stream's response headers: the event stream's own, then the request's."""
    return SSE_HEADERS + [(k.encode(), v.encode()) for k, v in headers.items()]


class StreamWriter(Protocol):
    """The neutral stream (chat.completion.chunk SSE, as the provider's translator and the plugins'
    chunk hooks leave it) written in the client's API, once its head is sent: a dialect's writer
    (gateway/pipeline/dialect.py). OpenAI's own endpoints have none: their stream is the neutral one.

    Its methods are coroutines because writing may wait on something before the bytes go out (the
    Responses writer stores the response before its terminal event reaches the client).
    """

    # Headers the stream's head carries besides the relay's (Anthropic's `request-id`).
    @property
    def headers(self) -> Mapping[str, str]: ...

    async def feed(self, data: bytes) -> bytes:
        """The next bytes of the neutral stream, written (empty while an event is incomplete)."""
        ...

    async def finish(self) -> bytes:
        """The neutral stream has ended, after its [DONE] or cut before it: the closing events."""
        ...

    async def error(self, error: GatewayError) -> bytes:
        """The stream failed after its head: the error, in-band, as this API ends a failed stream."""
        ...


class ClientStalled(Exception):
    """A write waited past its timeout for a client that does not read what it is sent."""


class BoundedSend:
    """The ASGI `send`, where a write that waits longer than `timeout_s` raises ClientStalled.

    uvicorn's `send` only waits when the transport's buffer is past its high-water mark (the
    client is not reading); without a bound, a stream nobody reads would wait for ever.

    One watchdog timer per stream, not one timeout per write: a stream's writes are many (a frame
    per event) and almost never wait, and a timer armed and cancelled around each of them cost a
    stream several per cent of its CPU. The watchdog is armed by a write when none is, looks at
    the write under way when it fires (past its bound: the task is cancelled, and that write
    raises ClientStalled, as `asyncio.timeout` would), and goes away when no write is under way;
    one that finds a younger write under way waits for that write's own bound. So a write is
    stopped `timeout_s` after it began, as before.
    """

    __slots__ = ("_send", "_since", "_stalled", "_task", "_timer", "timeout_s")

    def __init__(self, send: Send, timeout_s: float) -> None:
        self._send = send
        self.timeout_s = timeout_s
        # When the write under way began (the loop's clock); None between writes.
        self._since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._stalled = False

    async def __call__(self, message: Message) -> None:
        loop = asyncio.get_running_loop()
        self._since = loop.time()
        if self._timer is None:
            self._task = asyncio.current_task()
            self._timer = loop.call_at(self._since + self.timeout_s, self._check)
        try:
            await self._send(message)
        except asyncio.CancelledError:
            if not self._stalled:
                raise
            self._stalled = False
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            raise ClientStalled() from None
        finally:
            self._since = None

    def _check(self) -> None:
        self._timer = None
        since = self._since
        if since is None or self._task is None:
            return  # no write under way: the next one arms the watchdog again
        loop = asyncio.get_running_loop()
        due = since + self.timeout_s
        if loop.time() < due:
            self._timer = loop.call_at(due, self._check)
            return
        self._stalled = True
        self._task.cancel()

    def close(self) -> None:
        """The stream is over: no watchdog may outlive it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class DisconnectWatcher:
    """Cancels the request's task the moment the client disconnects.

    Cancelling the task, rather than closing one particular upstream response, stops whatever
    the request is waiting on (connecting, the first byte, the next chunk) and lets each
    `finally` close its upstream connection, so no upstream stream is left orphaned.

    The gateway's protocol tells it of a lost connection directly (the ON_DISCONNECT extension);
    under another server, a task waits in `receive()` for `http.disconnect`. The first costs a
    stream nothing until it fires; the second a task made, run and cancelled.
    """

    __slots__ = ("_on_disconnect", "_receiving", "_stopped", "_task", "fired")

    def __init__(self, receive: Receive, scope: Scope) -> None:
        self.fired = False
        self._stopped = False
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._receiving: asyncio.Future[None] | None = None
        self._on_disconnect = scope.get("extensions", {}).get(ON_DISCONNECT)
        if self._on_disconnect is not None:
            self._on_disconnect(self._fire, True)
        else:
            self._receiving = asyncio.ensure_future(self._run(receive))

    def _fire(self) -> None:
        # Once stopped, never: the protocol may have scheduled the call (a client gone before the
        # watch began) and the task has moved on to finishing the request, which must not be cut.
        if not self.fired and not self._stopped:
            self.fired = True
            self._task.cancel()

    async def _run(self, receive: Receive) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                self._fire()
                return

    def absorb(self) -> bool:
        """Inside `except CancelledError`: True (and the cancel undone) if it was our own."""
        if not self.fired:
            return False
        self._task.uncancel()
        return True

    def stop(self) -> None:
        self._stopped = True
        if self._on_disconnect is not None:
            self._on_disconnect(self._fire, False)
        elif self._receiving is not None and not self._receiving.done():
            self._receiving.cancel()


async def pump(
    send: Send,
    first: bytes,
    chunks: AsyncIterator[bytes],
    translator: StreamTranslator,
    writer: StreamWriter | None = None,
    ended: Callable[[], bool] | None = None,
) -> bytes:
    """Forward translated bytes as they arrive, through the client's dialect's writer when it has
    one; the caller handles errors and the final frame.

    Returns what it held back: output that came once the stream had finished (its terminal event
    seen) and the upstream's body was all in (`ended()`), so that nothing more can follow it but
    the closing frame. The caller sends it with that frame: one write instead of two, where the
    whole answer (or its last part, as usual) arrives in one read. Output is never held while
    the upstream may still send, so no event waits for a later read."""
    held = b""
    data = first
    rest = chunks.__aiter__()
    try:
        while True:
            out = translator.feed(data)
            if writer is not None:
                out = await writer.feed(out)
            if out:
                if translator.done and ended is not None and ended():
                    held += out
                else:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            try:
                data = await rest.__anext__()
            except StopAsyncIteration:
                return held
    except GatewayError:
        if held:  # what came before the failure is the client's, ahead of its in-band error
            await send({"type": "http.response.body", "body": held, "more_body": True})
        raise
