"""OpenTelemetry: a span per request with the request id, and a child span per upstream attempt.

Uses the SDK's in-memory exporter (the `otel` extra; skipped when it is not installed).
"""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import UpstreamTimeout
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Principal, Usage
from gateway.observability.tracing import NoTracer, OtelTracer, build_tracer
from gateway.pipeline.record import RequestRecord

FIRST = Deployment(provider="openai", base_url="http://127.0.0.1:9/v1", model="up-a", id="gpt/0")
SECOND = Deployment(provider="openai", base_url="http://127.0.0.1:9/v1", model="up-b", id="gpt/1")
MASTER = Principal(key_id="master", key_prefix="sk-master", is_master=True)


@pytest.fixture
def traced() -> tuple[OtelTracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelTracer(provider), exporter


def test_a_retried_request_has_one_span_per_attempt(traced: tuple[OtelTracer, InMemorySpanExporter]) -> None:
    tracer, exporter = traced
    request = ClientRequest("req_trace_1", Endpoint.CHAT, "", MASTER, "gpt", {})
    with pytest.raises(UpstreamTimeout), tracer.attempt(request, 1000.0, 1, FIRST):
        raise UpstreamTimeout("the upstream took too long")
    # The start/end form, for callers that report the end elsewhere.
    trace = tracer.start_attempt(request, 1000.0, 2, SECOND)
    trace.end()
    tracer.record(RequestRecord(request.request_id, Endpoint.CHAT, Endpoint.CHAT.value, 1000.0, finished=1000.25,
                                model=request.model, deployment=SECOND, attempts=2, status=200,
                                usage=Usage(7, 9)))  # fmt: skip

    spans = {span.name: span for span in exporter.get_finished_spans() if span.name != "gateway.upstream_attempt"}
    attempts = [span for span in exporter.get_finished_spans() if span.name == "gateway.upstream_attempt"]
    request = spans["gateway.request"]
    assert request.kind is SpanKind.SERVER
    assert request.attributes is not None
    assert request.attributes["gateway.request_id"] == "req_trace_1"
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["gen_ai.usage.output_tokens"] == 9
    # Back-dated to the request's arrival and ended at its finish, on the context's clocks.
    assert request.end_time is not None and request.start_time is not None
    assert request.end_time - request.start_time == pytest.approx(250_000_000, abs=1_000)

    assert [a.attributes["gateway.deployment"] for a in attempts if a.attributes] == ["gpt/0", "gpt/1"]
    assert [a.attributes["gateway.attempt"] for a in attempts if a.attributes] == [1, 2]
    for attempt in attempts:
        assert attempt.kind is SpanKind.CLIENT
        assert attempt.parent is not None and attempt.parent.span_id == request.context.span_id
        assert attempt.context.trace_id == request.context.trace_id
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert attempts[1].status.status_code is StatusCode.UNSET


def test_a_refused_request_still_gets_its_span(traced: tuple[OtelTracer, InMemorySpanExporter]) -> None:
    tracer, exporter = traced
    tracer.record(RequestRecord("req_trace_2", Endpoint.EMBEDDINGS, Endpoint.EMBEDDINGS.value, started=5.0,
                                finished=5.001, status=503, error_type="server_error"))
    [span] = exporter.get_finished_spans()
    assert span.name == "gateway.request"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["gen_ai.operation.name"] == "embeddings"


def test_tracing_is_off_unless_turned_on() -> None:
    assert isinstance(build_tracer(Settings()), NoTracer)
    with NoTracer().attempt(ClientRequest("r", Endpoint.CHAT, "", MASTER, "gpt", {}), 0.0, 1, FIRST):
        pass
    tracer = build_tracer(Settings(otel_enabled=True, otel_endpoint="http://127.0.0.1:9/v1/traces"))
    assert isinstance(tracer, OtelTracer)
    tracer.shutdown()
