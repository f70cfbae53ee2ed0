"""Turns the counters the limiter and the ledger keep for themselves into metrics.

Both keep plain, only-increasing counters (`LimiterStats`, `LedgerStats`) and know nothing of
Prometheus; a background task here reads them every `interval_s` and adds what grew since the
last reading. Per process, so the workers' multiprocess files sum correctly. The same task asks
the router to look at its circuits, so a circuit whose cooldown ran out while no request came
reports half-open instead of staying "open" on the dashboards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, Protocol

from gateway.observability.metrics import GatewayMetrics

# The limiter's refusal reasons, as limit kinds.
REFUSAL_KINDS = {"requests": "rpm", "tokens": "tpm", "parallel": "parallel", "budget": "budget"}


class LimiterLike(Protocol):
    stats: Any  # gateway.accounting.limits.limiter.LimiterStats


class LedgerLike(Protocol):
    def status(self) -> Mapping[str, Any]: ...


class RouterLike(Protocol):
    def observe_circuits(self) -> None: ...


class StatsBridge:
    def __init__(
        self,
        metrics: GatewayMetrics,
        *,
        limiter: LimiterLike | None = None,
        ledger: LedgerLike | None = None,
        router: RouterLike | None = None,
        interval_s: float = 2.0,
    ) -> None:
        self.metrics = metrics
        self.limiter = limiter
        self.ledger = ledger
        self.router = router
        self.interval_s = interval_s
        self._seen: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def _grew(self, key: str, now: int) -> int:
        delta = now - self._seen.get(key, 0)
        self._seen[key] = now
        return max(0, delta)

    def sample(self) -> None:
        m = self.metrics
        stats = getattr(self.limiter, "stats", None)
        if stats is not None:
            for reason, count in dict(getattr(stats, "refused", {})).items():
                if delta := self._grew(f"refused:{reason}", int(count)):
                    m.limit_rejected(REFUSAL_KINDS.get(reason) or str(reason), delta)
            if delta := self._grew("fail_open", int(getattr(stats, "fallback_admissions", 0))):
                m.limiter_backend_error("fail_open", delta)
            if delta := self._grew("fail_closed", int(getattr(stats, "unavailable_refusals", 0))):
                m.limiter_backend_error("fail_closed", delta)
            m.limiter_store_down.set(1 if getattr(stats, "redis_down", False) else 0)
        if self.ledger is not None:
            status = self.ledger.status()
            m.ledger_queue_depth(int(status.get("queued", 0)))
            for field, add in (
                ("written", m.ledger_written),
                ("spilled", m.ledger_spilled),
                ("replayed", m.ledger_replayed),
                ("rejected", m.ledger_rejected),
                ("lost", m.ledger_lost),
            ):
                if delta := self._grew(f"ledger:{field}", int(status.get(field, 0))):
                    add(delta)
        if self.router is not None:
            self.router.observe_circuits()

    async def start(self) -> None:
        if self._task is None and (self.limiter is not None or self.ledger is not None or self.router is not None):
            self._task = asyncio.create_task(self._run(), name="stats-bridge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sample()  # what grew since the last reading, e.g. rows spilled at shutdown

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.sample()
