"""uvicorn's httptools protocol with the limits a slow client must not escape.

uvicorn bounds the idle time between requests (keep-alive) but not the time a client takes to
send a request's headers, and a stream that the client stops reading waits for it for ever.
This protocol adds the first bound and hands the request, in its ASGI scope, the means to drop
the connection (`ABORT`): a stream that could not write within its send timeout is dropped at
once, instead of being closed politely behind a send buffer its client will never read.
The body's limits are the reader's (gateway/edge/body.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("gateway")

# The scope extension that drops the request's connection without flushing what is buffered.
ABORT = "gateway.abort"


@dataclass(frozen=True, slots=True)
class ClientLimits:
    header_timeout_s: float = 10.0
    send_buffer_bytes: int = 64 * 1024


class ServerConfig(uvicorn.Config):
    """uvicorn's config with the client limits, which reach every worker's protocols with it."""

    def __init__(self, app: Any, *, client_limits: ClientLimits, **options: Any) -> None:
        super().__init__(app, **options)
        self.client_limits = client_limits


class GatewayProtocol(HttpToolsProtocol):
    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._limits: ClientLimits = getattr(config, "client_limits", ClientLimits())
        self._headers_due: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        transport.set_write_buffer_limits(high=self._limits.send_buffer_bytes)
        self._await_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_headers()
        self.scope.setdefault("extensions", {})[ABORT] = self.transport.abort  # type: ignore[typeddict-item]

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's clock starts with its first byte; until then keep-alive bounds the wait.
        self._stop_waiting()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._stop_waiting()
        self._headers_due = self.loop.call_later(self._limits.header_timeout_s, self._headers_late)

    def _stop_waiting(self) -> None:
        if self._headers_due is not None:
            self._headers_due.cancel()
            self._headers_due = None

    def _headers_late(self) -> None:
        self._headers_due = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served: its headers came; only the next one's would be late
        if not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.info("%s sent no complete request headers within %.0f s; connection closed",
                     client, self._limits.header_timeout_s)  # fmt: skip
            self.transport.abort()
