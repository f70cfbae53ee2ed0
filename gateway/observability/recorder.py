"""The metrics `Recorder`: one finished request becomes counts and observations.

Latencies come from the context's clocks:

    started ── upstream_started ── first_byte_at ── finished
    |  gateway  |   upstream (attempt that served)   | relay (unary: parse and finish) |

The gateway's own added time is the time outside the upstream attempt; it is observed only for
requests served in one attempt, so that a retried attempt's wait is never taken for the gateway's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.observability.labels import NONE, LabelPolicy, bounded
from gateway.observability.metrics import ERROR_TYPES, GatewayMetrics
from gateway.pipeline.context import RequestContext

STREAM_LABEL = {True: "true", False: "false"}


@dataclass(slots=True)
class _Series:
    """The labelled children one kind of request touches, looked up once per label combination."""

    requests: Any
    duration: Any
    upstream: Any
    ttft: Any
    overhead: Any
    prompt: Any
    completion: Any
    cached: Any
    cost: Any
    unpriced: Any


class MetricsRecorder:
    def __init__(self, metrics: GatewayMetrics, labels: LabelPolicy) -> None:
        self.metrics = metrics
        self.labels = labels
        # Bounded like the labels themselves; saves ten `labels()` calls per request.
        self._series: dict[tuple[str, str, str, str, str, str], _Series] = {}

    def _lookup(self, route: str, model: str, provider: str, team: str, status_class: str, stream: str) -> _Series:
        key = (route, model, provider, team, status_class, stream)
        series = self._series.get(key)
        if series is None:
            m = self.metrics
            series = self._series[key] = _Series(
                requests=m.requests.labels(route, model, provider, team, status_class, stream),
                duration=m.request_duration.labels(route, model, provider),
                upstream=m.upstream_latency.labels(model, provider),
                ttft=m.ttft.labels(model, provider),
                overhead=m.overhead.labels(route, stream),
                prompt=m.tokens.labels(model, provider, team, "prompt"),
                completion=m.tokens.labels(model, provider, team, "completion"),
                cached=m.tokens.labels(model, provider, team, "cached_prompt"),
                cost=m.cost.labels(model, provider, team),
                unpriced=m.unpriced.labels(model, provider),
            )
        return series

    def record(self, ctx: RequestContext) -> None:
        m = self.metrics
        route = ctx.endpoint_name
        model = self.labels.model(ctx.model)
        provider = ctx.deployment.provider if ctx.deployment is not None else NONE
        team = self.labels.team(ctx.principal)
        status_class = f"{ctx.status // 100}xx"
        stream = STREAM_LABEL[ctx.stream]
        series = self._lookup(route, model, provider, team, status_class, stream)

        series.requests.inc()
        if ctx.status >= 400 or ctx.error_type is not None:
            status = str(ctx.status) if ctx.status >= 400 else "in_stream"
            kind = "cancelled" if ctx.cancelled and ctx.error_type is None else ctx.error_type
            m.errors.labels(route, model, provider, status, bounded(kind, ERROR_TYPES)).inc()

        self._latencies(ctx, series)

        usage = ctx.usage
        if usage is not None:
            if usage.prompt_tokens:
                series.prompt.inc(usage.prompt_tokens)
            if usage.completion_tokens:
                series.completion.inc(usage.completion_tokens)
            if usage.cached_tokens:
                series.cached.inc(usage.cached_tokens)
            if ctx.cost_usd is not None:
                series.cost.inc(float(ctx.cost_usd))
            elif ctx.deployment is not None:
                series.unpriced.inc()

        if ctx.complexity_tier is not None:
            # Tier names come from the config: the label is bounded.
            m.complexity_requests.labels(model, ctx.complexity_tier).inc()
            if ctx.complexity_classified:
                outcome = "used" if ctx.complexity_reading is not None else "features_only"
                m.complexity_classifier.labels(model, outcome).inc()
            if ctx.cost_usd is not None and usage is not None:
                m.complexity_cost.labels(model, ctx.complexity_tier).inc(float(ctx.cost_usd))
                # Counted only beside a known cost, so the two counters compare like for like.
                if ctx.top_tier_cost_usd is not None:
                    m.complexity_top_tier_cost.labels(model, ctx.complexity_tier).inc(float(ctx.top_tier_cost_usd))

        # Every attempt but the last failed and was followed by another (the router's retries and
        # fallbacks alike); ids come from the config, so the label is bounded.
        for deployment_id in ctx.attempted[:-1]:
            m.retries.labels(deployment_id).inc()
        if ctx.fallback:
            m.fallbacks.labels(model).inc()

        for budget in ctx.budgets:
            m.budget(budget)

        if m.key_requests is not None and m.key_cost is not None and ctx.principal is not None:
            key = ctx.principal.key_id
            m.key_requests.labels(key, status_class).inc()
            if ctx.cost_usd is not None:
                m.key_cost.labels(key).inc(float(ctx.cost_usd))

    @staticmethod
    def _latencies(ctx: RequestContext, series: _Series) -> None:
        finished = ctx.finished if ctx.finished is not None else ctx.started
        series.duration.observe(finished - ctx.started)
        upstream_started, first_byte_at = ctx.upstream_started, ctx.first_byte_at
        if upstream_started is None or first_byte_at is None:
            return
        series.upstream.observe(first_byte_at - upstream_started)
        if ctx.stream:
            series.ttft.observe(first_byte_at - ctx.started)
        if ctx.attempts == 1:
            added = upstream_started - ctx.started
            if not ctx.stream:
                added += finished - first_byte_at
            series.overhead.observe(max(0.0, added))
