"""Everything the router remembers about each deployment, across requests, in this process.

One record per deployment id: its circuit breaker, its caps and cool-down, its latency averages;
the load board counts what is in flight. Strategies read it; attempts write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from gateway.config.file import Deployment
from gateway.config.routing import RoutingOptions
from gateway.routing.breaker import CircuitBreaker, CircuitListener
from gateway.routing.caps import DeploymentCaps
from gateway.routing.latency import LatencyStats
from gateway.routing.load import LoadBoard


@dataclass(slots=True)
class DeploymentHealth:
    breaker: CircuitBreaker
    caps: DeploymentCaps
    latency: LatencyStats


class Health:
    def __init__(self, options: RoutingOptions, workers: int = 1, on_circuit: CircuitListener | None = None) -> None:
        self._options = options
        self._workers = workers
        self._on_circuit = on_circuit
        self._records: dict[str, DeploymentHealth] = {}
        self.load = LoadBoard()

    def of(self, deployment: Deployment) -> DeploymentHealth:
        key = deployment.id or ""
        record = self._records.get(key)
        if record is None:
            listener = self._on_circuit
            record = DeploymentHealth(
                CircuitBreaker(self._options.breaker, None if listener is None else partial(listener, key)),
                DeploymentCaps(deployment, self._workers),
                LatencyStats(self._options.latency_alpha),
            )
            self._records[key] = record
        return record

    def ready_at(self, deployment: Deployment, tokens: int, now: float) -> float:
        """When the deployment may take this request: now, later (cool-down, caps, cooldown), or never."""
        record = self.of(deployment)
        return max(record.breaker.ready_at(now), record.caps.ready_at(tokens, now))

    def observe(self, now: float) -> None:
        """Look at every breaker, so that one whose cooldown ran out with no traffic reports half-open."""
        for record in self._records.values():
            record.breaker.state(now)
