"""Traces from a running gateway, exported over OTLP/HTTP to a collector on loopback.

The collector is a tiny aiohttp server that decodes the OTLP protobuf body with the
`opentelemetry-proto` classes the exporter itself uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment, free_port


class Collector:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/traces"
        self.spans: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    self.spans.append({
                        "name": span.name, "id": span.span_id, "parent": span.parent_span_id,
                        "trace": span.trace_id, "status": span.status.code, "attributes": attributes,
                    })  # fmt: skip
        return web.Response(status=200)

    async def request_spans(self, request_id: str, seconds: float = 20) -> list[dict[str, Any]]:
        """The spans of one request, once its request span has arrived (a bound, not a timing check)."""
        async with asyncio.timeout(seconds):
            while True:
                mine = [s for s in self.spans if s["attributes"].get("gateway.request_id") == request_id]
                if any(s["name"] == "gateway.request" for s in mine):
                    return mine
                await asyncio.sleep(0.05)


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    c = Collector()
    await c.start()
    yield c
    await c.close()


async def test_requests_and_upstream_attempts_are_traced(
    upstream: FakeUpstream, collector: Collector, tmp_path: Path
) -> None:
    models = [
        {"name": "gpt-test", "deployments": [deployment(upstream)]},
        {"name": "down", "deployments": [{"provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1"}]},
    ]
    settings = {"otel_enabled": True, "otel_endpoint": collector.url, "otel_service_name": "gw-test"}
    gw = await asyncio.to_thread(
        Gateway, tmp_path, models, settings, {"OTEL_BSP_SCHEDULE_DELAY": "50"}
    )
    try:
        client = openai.AsyncOpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
        await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-request-id": "trace-ok"}
        )
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(
                model="down", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-request-id": "trace-bad"}
            )

        ok = await collector.request_spans("trace-ok")
        [request] = [s for s in ok if s["name"] == "gateway.request"]
        [attempt] = [s for s in ok if s["name"] == "gateway.upstream_attempt"]
        assert attempt["parent"] == request["id"] and attempt["trace"] == request["trace"]
        assert attempt["attributes"]["gateway.deployment"] == "gpt-test/0"
        assert request["attributes"]["http.response.status_code"] == 200
        assert request["attributes"]["gen_ai.request.model"] == "gpt-test"

        bad = await collector.request_spans("trace-bad")
        [failed] = [s for s in bad if s["name"] == "gateway.request"]
        attempts = [s for s in bad if s["name"] == "gateway.upstream_attempt"]
        assert attempts and all(a["parent"] == failed["id"] for a in attempts)
        assert all(a["status"] == 2 for a in attempts)  # STATUS_CODE_ERROR
        assert failed["status"] == 2 and failed["attributes"]["http.response.status_code"] >= 500
    finally:
        await asyncio.to_thread(gw.close)
