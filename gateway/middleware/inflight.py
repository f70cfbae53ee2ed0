"""Overload is answered, not queued: past the cap, a 503 with `retry-after` at once."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import Overloaded
from gateway.responses import send_error


class InflightLimitMiddleware:
    def __init__(self, app: ASGIApp, limit: int, retry_after_s: float, prefix: str = "/v1/") -> None:
        self.app = app
        self.limit = limit
        self.prefix = prefix
        self.inflight = 0
        self._error = Overloaded(
            "The gateway is at capacity; retry after the delay in the retry-after header.",
            retry_after=retry_after_s,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.limit:
            await send_error(send, self._error)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
