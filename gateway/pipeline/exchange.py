"""One request's lifetime, from its first byte to its record: the only place a request is finished.

    async with Exchange(ctx, finish) as exchange:
        ...  # read, admit, route, call, send the answer

Leaving the block finishes the request, whatever ended it: an answer sent, a refusal, a failure,
a cancelled task or a client that left. `finish` may be called earlier inside the block (the
ledger's durable mode puts the row on disk before the answer's last byte); it runs once either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from starlette.requests import ClientDisconnect

from gateway.core.errors import GatewayError
from gateway.pipeline.context import RequestContext


class Exchange:
    __slots__ = ("_finish", "ctx", "finished", "reservation")

    def __init__(self, ctx: RequestContext, finish: Callable[[RequestContext, Any], Awaitable[None]]) -> None:
        self.ctx = ctx
        self._finish = finish
        self.finished = False
        # What admission returned, settled when the exchange finishes (None: nothing reserved).
        self.reservation: Any = None

    async def __aenter__(self) -> Exchange:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self.ended_by(exc)
        await self.finish()

    def ended_by(self, exc: BaseException) -> None:
        """Note how an exception that leaves the exchange ended the request (before its error is sent)."""
        ctx = self.ctx
        if isinstance(exc, GatewayError):
            exc.extra_headers.update(ctx.response_headers)
            if not ctx.status:  # an answer already under way keeps the status it was sent with
                ctx.status, ctx.error_type = exc.status, exc.type
        elif isinstance(exc, ClientDisconnect | asyncio.CancelledError):
            ctx.cancelled = True

    async def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        await self._finish(self.ctx, self.reservation)
