"""The metrics `Recorder`: one finished request becomes counts and observations.

Latencies come from the record's clocks:

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
from gateway.pipeline.record import RequestRecord

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

    def record(self, record: RequestRecord) -> None:
        m = self.metrics
        route = record.endpoint_name
        model = self.labels.model(record.model)
        deployment = record.deployment
        provider = deployment.provider if deployment is not None else NONE
        team = self.labels.team(record.team_id)
        status_class = f"{record.status // 100}xx"
        stream = STREAM_LABEL[record.stream]
        series = self._lookup(route, model, provider, team, status_class, stream)

        series.requests.inc()
        if record.status >= 400 or record.error_type is not None:
            status = str(record.status) if record.status >= 400 else "in_stream"
            kind = "cancelled" if record.cancelled and record.error_type is None else record.error_type
            m.errors.labels(route, model, provider, status, bounded(kind, ERROR_TYPES)).inc()

        self._latencies(record, series)

        usage, cost = record.usage, record.cost_usd
        if usage is not None:
            if usage.prompt_tokens:
                series.prompt.inc(usage.prompt_tokens)
            if usage.completion_tokens:
                series.completion.inc(usage.completion_tokens)
            if usage.cached_tokens:
                series.cached.inc(usage.cached_tokens)
            if cost is not None:
                series.cost.inc(float(cost))
            elif deployment is not None:
                series.unpriced.inc()

        tier = record.complexity_tier
        if tier is not None:
            # Tier names come from the config: the label is bounded.
            m.complexity_requests.labels(model, tier).inc()
            if record.complexity_classified:
                outcome = "used" if record.complexity_reading is not None else "features_only"
                m.complexity_classifier.labels(model, outcome).inc()
            if cost is not None and usage is not None:
                m.complexity_cost.labels(model, tier).inc(float(cost))
                # Counted only beside a known cost, so the two counters compare like for like.
                if record.top_tier_cost_usd is not None:
                    m.complexity_top_tier_cost.labels(model, tier).inc(float(record.top_tier_cost_usd))

        # Every attempt but the last failed and was followed by another (the router's retries and
        # fallbacks alike); ids come from the config, so the label is bounded.
        for deployment_id in record.attempted[:-1]:
            m.retries.labels(deployment_id).inc()
        if record.fallback:
            m.fallbacks.labels(model).inc()

        for budget in record.budgets:
            m.budget(budget)

        key = record.key_id
        if m.key_requests is not None and m.key_cost is not None and key is not None:
            m.key_requests.labels(key, status_class).inc()
            if cost is not None:
                m.key_cost.labels(key).inc(float(cost))

    @staticmethod
    def _latencies(record: RequestRecord, series: _Series) -> None:
        started, finished = record.started, record.finished
        series.duration.observe(finished - started)
        upstream_started, first_byte_at = record.upstream_started, record.first_byte_at
        if upstream_started is None or first_byte_at is None:
            return
        series.upstream.observe(first_byte_at - upstream_started)
        if record.stream:
            series.ttft.observe(first_byte_at - started)
        if record.attempts == 1:
            added = upstream_started - started
            if not record.stream:
                added += finished - first_byte_at
            series.overhead.observe(max(0.0, added))
