"""Optional OpenTelemetry traces: a span per request, and a child span per upstream attempt.

Whoever makes an upstream attempt wraps it in `with tracer.attempt(request, started, number,
deployment):` (the client's request value, its arrival on the perf_counter clock, the attempt's
number), or, where an attempt's end is reported elsewhere, calls `trace = tracer.start_attempt(...)`
with the same values and
later `trace.end()` or `trace.end(error_type)`. The request's span starts with its first attempt
(back-dated to the request's arrival) and ends when the request's record comes, so nothing else
on the request path needs to know about tracing. An attempt span lasts until the upstream's response
(unary) or its first chunk (streams); an exception leaving `attempt` marks it failed. Without
`otel_enabled` every call here is a no-op.

The OpenTelemetry SDK is the optional extra `otel`; the tracer provider is the gateway's own,
not the global one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol

from gateway.config.file import ConfigError, Deployment
from gateway.config.settings import Settings
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint
from gateway.pipeline.record import RequestRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

OPERATION = {Endpoint.CHAT: "chat", Endpoint.COMPLETIONS: "text_completion", Endpoint.EMBEDDINGS: "embeddings"}


class AttemptTrace(Protocol):
    def end(self, error: str | None = None) -> None: ...


class Tracer(Protocol):
    def attempt(
        self, request: ClientRequest, started: float, number: int, deployment: Deployment
    ) -> AbstractContextManager[object]: ...

    def start_attempt(
        self, request: ClientRequest, started: float, number: int, deployment: Deployment
    ) -> AttemptTrace: ...

    def record(self, record: RequestRecord) -> None: ...

    def shutdown(self) -> None: ...


class _NoAttempt:
    def end(self, error: str | None = None) -> None:
        return None


class NoTracer:
    enabled = False
    _null: nullcontext[None] = nullcontext()
    _no_attempt = _NoAttempt()

    def attempt(
        self, request: ClientRequest, started: float, number: int, deployment: Deployment
    ) -> AbstractContextManager[object]:
        return self._null

    def start_attempt(
        self, request: ClientRequest, started: float, number: int, deployment: Deployment
    ) -> AttemptTrace:
        return self._no_attempt

    def record(self, record: RequestRecord) -> None:
        return None

    def shutdown(self) -> None:
        return None


class OtelTracer:
    enabled = True

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import trace

        self._trace = trace
        self.provider = provider
        self._tracer = provider.get_tracer("llm-gateway")
        # Open request spans, by request id and arrival: request ids come from clients and may
        # repeat, two arrivals on the same perf_counter reading do not.
        self._open: dict[tuple[str, float], Span] = {}
        # perf_counter() readings (the context's clocks) to Unix nanoseconds.
        self._offset_ns = time.time_ns() - time.perf_counter_ns()

    def _ns(self, perf: float) -> int:
        return int(perf * 1e9) + self._offset_ns

    def _new_request_span(self, request_id: str, started: float, endpoint: Endpoint, model: str, stream: bool) -> Span:
        return self._tracer.start_span(
            "gateway.request",
            kind=self._trace.SpanKind.SERVER,
            start_time=self._ns(started),
            attributes={
                "gateway.request_id": request_id,
                "gen_ai.operation.name": OPERATION.get(endpoint, endpoint.value),
                "gen_ai.request.model": model,
                "gateway.stream": stream,
            },
        )

    def start_attempt(
        self, request: ClientRequest, started: float, number: int, deployment: Deployment
    ) -> AttemptTrace:
        rid = request.request_id
        span = self._open.get((rid, started))
        if span is None:
            span = self._new_request_span(rid, started, request.endpoint, request.model, request.stream)
            self._open[(rid, started)] = span
        parent = self._trace.set_span_in_context(span)
        attributes: dict[str, Any] = {
            "gateway.request_id": rid,
            "gateway.deployment": deployment.id or "",
            "gateway.attempt": number,
            "gen_ai.provider.name": deployment.provider,
            "gen_ai.request.model": deployment.model or request.model,
        }
        span = self._tracer.start_span(
            "gateway.upstream_attempt", context=parent, kind=self._trace.SpanKind.CLIENT, attributes=attributes
        )
        return _OtelAttempt(span, self._trace)

    @contextmanager
    def _attempt(
        self, request: ClientRequest, started: float, number: int, deployment: Deployment
    ) -> Iterator[AttemptTrace]:
        trace = self.start_attempt(request, started, number, deployment)
        try:
            yield trace
        except BaseException as exc:
            trace.end(getattr(exc, "code", None) or getattr(exc, "type", None) or type(exc).__name__)
            raise
        trace.end()

    def attempt(
        self, request: ClientRequest, started: float, number: int, deployment: Deployment
    ) -> AbstractContextManager[object]:
        return self._attempt(request, started, number, deployment)

    def record(self, record: RequestRecord) -> None:
        span = self._open.pop((record.request_id, record.started), None)
        if span is None:  # a request that never reached an upstream (refused, unknown model) still gets its span
            span = self._new_request_span(record.request_id, record.started, record.endpoint, record.model,
                                          record.stream)  # fmt: skip
        status, error_type, deployment, usage = record.status, record.error_type, record.deployment, record.usage
        attributes: dict[str, Any] = {"http.response.status_code": status, "gateway.attempts": record.attempts}
        if deployment is not None:
            attributes["gateway.deployment"] = deployment.id or ""
            attributes["gen_ai.provider.name"] = deployment.provider
        if record.team_id is not None:
            attributes["gateway.team"] = record.team_id
        if usage is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
        if record.cost_usd is not None:
            attributes["gateway.cost_usd"] = str(record.cost_usd)
        if error_type is not None:
            attributes["error.type"] = error_type
        span.set_attributes(attributes)
        if status >= 500 or error_type is not None:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error_type or str(status)))
        span.end(end_time=self._ns(record.finished))

    def shutdown(self) -> None:
        self.provider.shutdown()


class _OtelAttempt:
    def __init__(self, span: Span, trace: Any) -> None:
        self.span = span
        self._trace = trace

    def end(self, error: str | None = None) -> None:
        if not self.span.is_recording():
            return  # ended already
        if error is not None:
            self.span.set_attribute("error.type", error)
            self.span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error))
        self.span.end()


def build_tracer(settings: Settings) -> NoTracer | OtelTracer:
    if not settings.otel_enabled:
        return NoTracer()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(
            "config error: settings.otel_enabled: needs the otel extra (pip install 'llm-gateway[otel]')"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name}))
    exporter = OTLPSpanExporter(endpoint=settings.otel_endpoint) if settings.otel_endpoint else OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return OtelTracer(provider)
