"""`GET /metrics`: the Prometheus text format, optionally behind a bearer token."""

from __future__ import annotations

import asyncio
import hmac

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from gateway.identity.auth import presented_key
from gateway.observability import multiproc


class MetricsEndpoint:
    def __init__(self, registry: CollectorRegistry, token: SecretStr | None = None) -> None:
        self.registry = registry
        self.multiprocess = multiproc.enabled()
        self._token = token.get_secret_value().encode() if token is not None else None

    async def handle(self, request: Request) -> Response:
        if self._token is not None:
            presented = presented_key(request.headers)
            if presented is None or not hmac.compare_digest(presented.encode(), self._token):
                return Response(
                    "metrics need the bearer token\n", status_code=401, media_type="text/plain",
                    headers={"www-authenticate": 'Bearer realm="metrics"'},
                )
        if self.multiprocess:
            # Reads one file per worker and metric kind: off the event loop.
            body = await asyncio.to_thread(self.collect_all)
        else:
            body = generate_latest(self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @staticmethod
    def collect_all() -> bytes:
        from prometheus_client import multiprocess

        # A fresh registry per scrape, as the library requires: the app's own metrics are not on it,
        # or every value would be exported twice.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
