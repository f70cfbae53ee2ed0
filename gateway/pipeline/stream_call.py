"""A streamed request's answer, from opening the upstream stream to the last byte sent.

`StreamCall` is the ASGI response `Proxy.serve` runs for a request that streams (and for speech,
whose audio is relayed as it comes): it asks the proxy to open the stream (routing, retries and
fallbacks happen there, until the first byte), sends the head, pumps the stream through the
provider's translator, the plugins' chunk hooks and the dialect's writer, and ends it however it
ends: its last frame, an in-band error, a client that left or stopped reading, a drain that ran
out. The request's exchange then finishes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from gateway.core.errors import GatewayError, ServiceUnavailable, sse_error_event
from gateway.core.types import StreamTranslator
from gateway.edge.protocol import ABORT
from gateway.edge.relay import BoundedSend, ClientStalled, DisconnectWatcher, StreamWriter, pump, sse_head
from gateway.pipeline.dialect import Dialect
from gateway.pipeline.exchange import Exchange
from gateway.upstream.client import UpstreamStream

if TYPE_CHECKING:
    from gateway.pipeline.proxy import Proxy

log = logging.getLogger("gateway")


@dataclass(slots=True)
class OpenStream:
    stream: UpstreamStream
    chunks: AsyncIterator[bytes]
    first: bytes
    translator: StreamTranslator


class StreamCall:
    """The ASGI response of a streamed request: it owns the stream from opening to the last byte.

    The provider's translator (behind the plugins' chunk hooks) makes the neutral stream; the
    dialect's writer, when it has one, writes it in the client's API; an error before the head is
    the dialect's error.
    """

    def __init__(self, proxy: Proxy, exchange: Exchange, dialect: Dialect, writer: StreamWriter | None) -> None:
        self.proxy = proxy
        self.exchange = exchange
        self.ctx = exchange.ctx
        self.dialect = dialect
        self.writer = writer
        self.closed = False
        # Output the pump held back for the closing frame, until it is sent (a cut sends it too).
        self.held = b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.ctx
        watcher = DisconnectWatcher(receive, scope)
        opened: OpenStream | None = None
        # A client that stops reading: once the send buffer is full, a write waits this long at most.
        send = bounded = BoundedSend(send, self.proxy.timeouts.send_s)
        started = False
        try:
            try:
                opened = await self.proxy.open_stream(ctx)
                if ctx.plugins is not None and ctx.stream:
                    opened.translator = ctx.plugins.wrap(ctx, opened.translator)  # the chunk hooks
            except GatewayError as error:
                ctx.status, ctx.error_type = error.status, error.type
                error.extra_headers.update(ctx.response_headers)
                await self.dialect.error(error, ctx.request_id)(scope, receive, send)
                return
            ctx.status = 200
            writer = self.writer
            await send({"type": "http.response.start", "status": 200, "headers": self._head(opened)})
            started = True
            try:
                self.held = await pump(send, opened.first, opened.chunks, opened.translator, writer,
                                       opened.stream.ended)  # fmt: skip
                if self.proxy.durable is not None and self.held:
                    # The stream's events go out as before; only its last frame waits for the disk.
                    await self._send_held(send)
                tail = opened.translator.finish()
                if writer is not None:
                    tail = await writer.feed(tail) + await writer.finish()
            except GatewayError as error:
                ctx.error_type = error.type
                if not ctx.stream:
                    # Audio has no in-band error: the response ends unfinished, which clients see.
                    return
                # Headers are gone: the error travels in-band, and the stream closes cleanly.
                tail = sse_error_event(error) if writer is None else await writer.error(error)
            if self.proxy.durable is not None:
                await self._close(opened)
                await self.exchange.finish()  # the row on disk first, then the stream's last frame
            # What the pump held back (the stream's last events) goes out with the closing frame.
            tail, self.held = self.held + tail, b""
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        except ClientStalled:
            # Nothing more can reach a client that does not read: drop the connection, buffer and all.
            ctx.cancelled = True
            log.info("request %s: the client stopped reading its stream for %.0f s; stream cancelled",
                     ctx.request_id, self.proxy.timeouts.send_s)  # fmt: skip
            abort = scope.get("extensions", {}).get(ABORT)
            if abort is not None:
                abort()
        except asyncio.CancelledError:
            if watcher.absorb():
                ctx.cancelled = True
            elif not await self._cut(scope, receive, send, started):
                raise
        finally:
            watcher.stop()
            bounded.close()
            await self._close(opened)

    def _head(self, opened: OpenStream) -> list[tuple[bytes, bytes]]:
        headers = self.ctx.response_headers
        if self.writer is not None:
            headers = {**headers, **self.writer.headers}
        if self.ctx.stream:
            return sse_head(headers)
        return _binary_headers(opened.stream.headers) + [(k.encode(), v.encode()) for k, v in headers.items()]

    async def _send_held(self, send: Send) -> None:
        held, self.held = self.held, b""
        await send({"type": "http.response.body", "body": held, "more_body": True})

    async def _close(self, opened: OpenStream | None) -> None:
        """Close the upstream, once, and take the stream's usage (the exchange then finishes it)."""
        if opened is None or self.closed:
            return
        self.closed = True
        opened.stream.close()
        await opened.chunks.aclose()  # type: ignore[attr-defined]
        self.ctx.usage = opened.translator.usage

    async def _cut(self, scope: Scope, receive: Receive, send: BoundedSend, started: bool) -> bool:
        """The server cancelled the stream (the drain after SIGTERM ran out): tell the client in-band
        and end the stream properly. False if this cancellation is not one to absorb."""
        task = asyncio.current_task()
        if task is None or task.cancelling() > 1:
            return False
        task.uncancel()
        ctx = self.ctx
        ctx.cancelled = True
        error = ServiceUnavailable("The gateway is shutting down and cut this stream; retry the request.")
        log.info("request %s: stream cut at the end of the drain", ctx.request_id)
        try:
            if started:
                writer = self.writer
                body = sse_error_event(error) + DONE if writer is None else await writer.error(error)
                # Events the pump held for the closing frame were the client's before the cut.
                body, self.held = self.held + body, b""
                await send({"type": "http.response.body", "body": body, "more_body": False})
            else:
                ctx.status, ctx.error_type = error.status, error.type
                await self.dialect.error(error, ctx.request_id)(scope, receive, send)
        except (ClientStalled, OSError):
            pass  # the client is gone or not reading: nothing more to tell it
        return True


DONE = b"data: [DONE]\n\n"


def _binary_headers(upstream: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """The upstream's content type (audio/mpeg, audio/wav...) for a relayed binary answer."""
    kind = next((v for k, v in upstream.items() if k.lower() == "content-type"), "application/octet-stream")
    return [(b"content-type", kind.encode("latin-1")), (b"cache-control", b"no-cache")]
