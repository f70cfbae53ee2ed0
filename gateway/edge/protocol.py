"""uvicorn's httptools protocol with the limits a slow client must not escape.

uvicorn bounds the idle time between requests (keep-alive) but not the time a client takes to
send a request's headers, and a stream that the client stops reading waits for it for ever.
This protocol adds the first bound and hands the request, in its ASGI scope, the means to drop
the connection (`ABORT`): a stream that could not write within its send timeout is dropped at
once, instead of being closed politely behind a send buffer its client will never read.
The body's limits are the reader's (gateway/edge/body.py).

It also writes a response's head together with what follows it in the same event-loop
iteration (`HeadFirst`): uvicorn writes the status line and headers, then the body, as two
socket writes; a JSON answer's body always comes right behind its head, so one write carries both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("gateway")

# The scope extension that drops the request's connection without flushing what is buffered.
ABORT = "gateway.abort"
# The scope extension that calls a function (once) if the client goes away before the response is
# complete: `watch(on_lost, True)`, and `watch(on_lost, False)` to stop. A stream watches for its
# client this way instead of with a task parked in `receive()` (gateway/edge/relay.py).
ON_DISCONNECT = "gateway.on_disconnect"


@dataclass(frozen=True, slots=True)
class ClientLimits:
    header_timeout_s: float = 10.0
    send_buffer_bytes: int = 64 * 1024
    # A request line and headers larger than this are refused with 431 (h11's default is 16 KiB;
    # httptools has no limit of its own).
    header_bytes: int = 64 * 1024


_TOO_LARGE_BODY = orjson.dumps({"error": {
    "message": "The request line and headers are larger than this gateway's limit.",
    "type": "invalid_request_error", "param": None, "code": "request_header_fields_too_large",
}})  # fmt: skip
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
              b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY))


class ServerConfig(uvicorn.Config):
    """uvicorn's config with the client limits, which reach every worker's protocols with it."""

    def __init__(self, app: Any, *, client_limits: ClientLimits, **options: Any) -> None:
        super().__init__(app, **options)
        self.client_limits = client_limits


class GatewayProtocol(HttpToolsProtocol):
    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._limits: ClientLimits = getattr(config, "client_limits", ClientLimits())
        # Since when (the loop's clock) the connection waits for a request's headers; None: it does not.
        self._headers_since: float | None = None
        # What to call if the client goes away mid-response (see ON_DISCONNECT).
        self._on_lost: Callable[[], None] | None = None
        # One timer per connection, re-armed lazily: a request whose headers come in time costs none.
        self._watch: asyncio.TimerHandle | None = None
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        transport.set_write_buffer_limits(high=self._limits.send_buffer_bytes)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._headers_since is None or self.transport.is_closing():
            return  # the headers are complete (whatever else the data held is body), or it is over
        self._header_bytes += len(data)
        if self._header_bytes > self._limits.header_bytes:
            self._stop_waiting()
            log.info("a client sent request headers over %d bytes; refused with 431", self._limits.header_bytes)
            self.transport.write(_TOO_LARGE)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_headers()
        # uvicorn's scope type wants every extension to be a dict; these are callables themselves.
        extensions = self.scope.setdefault("extensions", {})
        extensions[ABORT] = self.transport.abort  # type: ignore[assignment]
        extensions[ON_DISCONNECT] = self._watch_lost  # type: ignore[assignment]

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        super().on_headers_complete()
        if self.cycle is not None:
            # The cycle's task has not run yet: it writes its response through this from the start.
            self.cycle.transport = HeadFirst(self.transport, self.loop)  # type: ignore[assignment]

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's clock starts with its first byte; until then keep-alive bounds the wait.
        self._stop_waiting()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        super().connection_lost(exc)
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None and self.cycle is not None and self.cycle.disconnected:
            on_lost()

    def _watch_lost(self, on_lost: Callable[[], None], watching: bool) -> None:
        """The ON_DISCONNECT extension. A client already gone is reported at once (soon, from the
        loop); a stop clears only the function it names, never the next request's."""
        if not watching:
            if self._on_lost == on_lost:
                self._on_lost = None
        elif self.cycle is not None and self.cycle.disconnected:
            self.loop.call_soon(on_lost)
        else:
            self._on_lost = on_lost

    def _await_headers(self) -> None:
        self._header_bytes = 0
        self._headers_since = since = self.loop.time()
        if self._watch is None:
            self._watch = self.loop.call_at(since + self._limits.header_timeout_s, self._check)

    def _stop_waiting(self) -> None:
        self._headers_since = None

    def _check(self) -> None:
        """The connection's timer: are the headers it waits for late, or is it waiting at all?"""
        self._watch = None
        since = self._headers_since
        if since is None:
            return  # not waiting: the next request's first byte arms the timer again
        due = since + self._limits.header_timeout_s
        if self.loop.time() < due:
            self._watch = self.loop.call_at(due, self._check)
            return
        self._headers_late()

    def _headers_late(self) -> None:
        self._stop_waiting()
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served: its headers came; only the next one's would be late
        if not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.info("%s sent no complete request headers within %.0f s; connection closed",
                     client, self._limits.header_timeout_s)  # fmt: skip
            self.transport.abort()


class HeadFirst:
    """The transport a response is written through: its first write (the head, or a 100 Continue)
    waits for the next one or for the end of the event-loop iteration, whichever comes first, and
    then goes out with it; every later write goes straight to the socket. Nothing is ever held
    past the iteration it was written in, nor past a close."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        # None: nothing written yet; b"": the head has gone out, writes pass straight through.
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held:
            self._held = b""
            self._transport.write(held + data)
        elif held is None:
            self._held = data
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        held = self._held
        if held:
            self._held = b""
            if not self._transport.is_closing():
                self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._flush()
        self._transport.close()
