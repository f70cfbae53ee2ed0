"""Builds metrics, request logs, tracing and budget alerts once, for the app factory to hand out."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from starlette.routing import Route

from gateway.config.file import Config
from gateway.config.settings import Settings
from gateway.db.redis import open_redis
from gateway.observability import multiproc
from gateway.observability.alerts.budget import BudgetAlerter
from gateway.observability.alerts.claims import Claims, FileClaims, RedisClaims
from gateway.observability.bridge import LedgerLike, LimiterLike, RouterLike, StatsBridge
from gateway.observability.exposition import MetricsEndpoint
from gateway.observability.labels import LabelPolicy
from gateway.observability.logs import LineWriter, RequestLogRecorder, configure_logging
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.recorder import MetricsRecorder
from gateway.observability.teams import TeamSource
from gateway.observability.tracing import NoTracer, OtelTracer, build_tracer
from gateway.pipeline.hooks import Recorder


@dataclass
class Observability:
    # None when metrics are off; stages that report (limits, ledger, router) then skip it.
    metrics: GatewayMetrics | None
    labels: LabelPolicy
    tracer: NoTracer | OtelTracer
    alerter: BudgetAlerter | None
    recorders: list[Recorder] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    redis: Any = None
    bridge: StatsBridge | None = None

    def watch(
        self, *, limiter: LimiterLike | None = None, ledger: LedgerLike | None = None, router: RouterLike | None = None
    ) -> None:
        """Export the counters the limiter and the ledger keep, and look at the router's circuits
        periodically (gateway/observability/bridge.py)."""
        if self.metrics is not None:
            self.bridge = StatsBridge(self.metrics, limiter=limiter, ledger=ledger, router=router)

    @property
    def circuit_listener(self) -> Callable[[str, str], None] | None:
        """What the router's breakers report their state changes to (None when metrics are off)."""
        return self.metrics.circuit_state if self.metrics is not None else None

    def name_teams(self, source: TeamSource) -> None:
        """Where `llm_gateway_team_info` reads team names from (the key store, once started)."""
        if self.metrics is not None:
            self.metrics.team_names.source = source

    async def start(self) -> None:
        if self.metrics is not None:
            self.metrics.workers.inc()
        if self.bridge is not None:
            await self.bridge.start()
        if self.alerter is not None:
            await self.alerter.start()

    async def stop(self) -> None:
        """Call after the limiter and the ledger have stopped, so their last counts are taken."""
        if self.bridge is not None:
            await self.bridge.stop()
        if self.alerter is not None:
            await self.alerter.stop()
        if self.redis is not None:
            await self.redis.aclose()
        self.tracer.shutdown()
        if self.metrics is not None:
            self.metrics.workers.dec()
            multiproc.worker_exited(os.getpid())


def build_observability(config: Config, settings: Settings) -> Observability:
    configure_logging(settings.log_level)
    models = [name for group in config.models for name in (group.name, *group.aliases)]
    labels = LabelPolicy(models, key_labels=settings.metrics_key_labels)
    metrics = _metrics(settings) if settings.metrics_enabled else None
    tracer = build_tracer(settings)
    obs = Observability(metrics=metrics, labels=labels, tracer=tracer, alerter=None)

    if metrics is not None:
        metrics.configured([d.id for group in config.models for d in group.deployments if d.id],
                           [group.name for group in config.models if "*" not in group.name])
        obs.recorders.append(MetricsRecorder(metrics, labels))
        # No token of its own: the master key opens it (team ids and spend are not for everyone).
        endpoint = MetricsEndpoint(metrics.registry, settings.metrics_token or settings.master_key,
                                   extra=[metrics.team_names], refresh=metrics.team_names.refresh)
        obs.routes.append(Route("/metrics", endpoint.handle, methods=["GET"]))
    if settings.log_requests:
        obs.recorders.append(RequestLogRecorder(log_prompts=settings.log_prompts, writer=LineWriter(sys.stderr)))
    if isinstance(tracer, OtelTracer):
        obs.recorders.append(tracer)
    if settings.alert_webhooks:
        obs.alerter = BudgetAlerter(
            webhooks=[url.get_secret_value() for url in settings.alert_webhooks],
            claims=_claims(settings, obs),
            thresholds_pct=settings.alert_thresholds_pct,
            scopes=settings.alert_scopes,
            metrics=metrics,
            queue_size=settings.alert_queue_size,
            max_attempts=settings.alert_max_attempts,
            retry_base_s=settings.alert_retry_base_s,
            timeout_s=settings.alert_timeout_s,
        )
        obs.recorders.append(obs.alerter)
    return obs


def _metrics(settings: Settings) -> GatewayMetrics:
    # `_created` series double the counters for nothing a dashboard uses (process-wide switch).
    prometheus_client.disable_created_metrics()
    registry = CollectorRegistry()
    if not multiproc.enabled():
        # Multiprocess mode cannot export these; with one worker they come for free.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return GatewayMetrics(registry, key_labels=settings.metrics_key_labels)


def _claims(settings: Settings, obs: Observability) -> Claims:
    if settings.redis_url is not None:
        obs.redis = open_redis(settings)
        return RedisClaims(obs.redis, settings.redis_prefix)
    claims = FileClaims(Path(settings.data_dir) / "alerts")
    claims.prune()
    return claims
