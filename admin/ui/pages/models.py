"""Models: each public model, its deployments, their circuit state and recent latency and errors.

Two sources, shown side by side: the router's in-process view of each deployment (circuit
breaker, cool-down after a 429, requests in flight, decaying averages of latency and success),
and the ledger's record of today's requests per model (counts, error rate, percentiles).
The router keeps its health per worker process: with several workers, this page shows the one
that served it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from admin.complexity_api import ComplexityApi
from admin.ui.usage import Usage, latency_by, midnight, today
from admin.ui.web import Ui, Visit
from gateway.config.file import Deployment, ModelGroup
from gateway.routing.router import Router


@dataclass(frozen=True, slots=True)
class DeploymentView:
    id: str
    provider: str
    model: str
    where: str
    circuit: str
    cooling_s: float | None
    inflight: int
    latency_ms: float | None
    first_token_ms: float | None
    error_rate: float | None  # None: no attempt seen yet by this worker


def deployment_view(router: Router, deployment: Deployment) -> DeploymentView:
    now = router.clock()
    health = router.health.of(deployment)
    stats = health.latency
    measured = stats.total_s is not None or stats.first_token_s is not None or stats.success_rate < 1.0
    cool = health.caps.cool_until - now
    return DeploymentView(
        id=deployment.id or "",
        provider=deployment.provider,
        model=deployment.model or "",
        where=", ".join([*([deployment.region] if deployment.region else []), *deployment.tags]),
        circuit=str(health.breaker.state(now)),
        cooling_s=cool if cool > 0 else None,
        inflight=router.health.load.inflight(deployment.id or ""),
        latency_ms=stats.total_s * 1000 if stats.total_s is not None else None,
        first_token_ms=stats.first_token_s * 1000 if stats.first_token_s is not None else None,
        error_rate=1.0 - stats.success_rate if measured else None,
    )


class Models:
    def __init__(self, ui: Ui, router: Router, workers: int, complexity: ComplexityApi | None = None) -> None:
        self.ui = ui
        self.router = router
        self.workers = workers
        self.complexity = complexity

    async def _tiers(self, visit: Visit) -> dict[str, Any]:
        """Each `complexity` model's last 30 days by tier, and what the top tier would have cost."""
        if self.complexity is None:
            return {}
        reports = {}
        for group in self.router.groups:
            if group.complexity is not None:
                reports[group.name] = await self.ui.backend.get(visit.session, self.complexity.report,
                                                                {"model": group.name})
        return reports

    def _wildcard_deployments(self) -> list[Deployment]:
        listed = {d.id for group in self.router.groups for d in group.deployments}
        return [d for d in self.router.deployments() if d.id not in listed]

    async def show(self, visit: Visit) -> Response:
        usage = Usage(self.ui.backend, visit.session)
        day = today()
        by_model, rows = await asyncio.gather(usage.grouped(day, day, "model"), usage.recent_rows(midnight(day)))
        groups: list[tuple[ModelGroup, list[DeploymentView]]] = [
            (group, [deployment_view(self.router, d) for d in group.deployments]) for group in self.router.groups
        ]
        return self.ui.show(
            visit, "models.html", groups=groups,
            wildcards=[deployment_view(self.router, d) for d in self._wildcard_deployments()],
            today=by_model, latency=latency_by(rows, "requested_model"),
            default_strategy=self.router.options.default_strategy, workers=self.workers, pid=os.getpid(),
            tiers=await self._tiers(visit),
        )
