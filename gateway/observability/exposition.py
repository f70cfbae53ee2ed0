"""`GET /metrics`: the Prometheus text format, behind a bearer token.

Series carry team ids and spend per team, so the endpoint is never open: it wants the metrics
token (`metrics_token`), or the master key when no token is set. Give Prometheus the token, not
the master key.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from gateway.identity.auth import presented_key
from gateway.observability import multiproc


async def _nothing() -> None:
    return None


class MetricsEndpoint:
    def __init__(
        self,
        registry: CollectorRegistry,
        token: SecretStr | None,
        *,
        extra: Sequence[Collector] = (),
        refresh: Callable[[], Awaitable[None]] = _nothing,
    ) -> None:
        """`extra`: collectors computed at scrape time in the answering worker (never in the
        multiprocess files); `refresh` runs before each scrape to bring them up to date."""
        self.registry = registry
        self.multiprocess = multiproc.enabled()
        self._token = token.get_secret_value().encode() if token is not None else None
        self.extra = tuple(extra)
        self.refresh = refresh
        if not self.multiprocess:
            for collector in self.extra:
                registry.register(collector)

    async def handle(self, request: Request) -> Response:
        presented = presented_key(request.headers)
        if self._token is None or presented is None or not hmac.compare_digest(presented.encode(), self._token):
            return Response(
                "metrics need the bearer token\n", status_code=401, media_type="text/plain",
                headers={"www-authenticate": 'Bearer realm="metrics"'},
            )  # fmt: skip
        await self.refresh()
        if self.multiprocess:
            # Reads one file per worker and metric kind: off the event loop.
            body = await asyncio.to_thread(self.collect_all, self.extra)
        else:
            body = generate_latest(self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @staticmethod
    def collect_all(extra: Sequence[Collector] = ()) -> bytes:
        from prometheus_client import multiprocess

        # A fresh registry per scrape, as the library requires: the app's own metrics are not on it,
        # or every value would be exported twice.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in extra:
            registry.register(collector)
        return generate_latest(registry)
