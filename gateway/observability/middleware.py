"""Counts the API requests in flight: the one metric that needs a request's start, not its end."""

from __future__ import annotations

from prometheus_client import Gauge
from starlette.types import ASGIApp, Receive, Scope, Send


class InflightGaugeMiddleware:
    def __init__(self, app: ASGIApp, gauge: Gauge, prefix: str = "/v1/") -> None:
        self.app = app
        self.gauge = gauge
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        self.gauge.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.gauge.dec()
