"""Budget alerts: a `Recorder` that notices threshold crossings, and a background task that posts them.

`record` runs on the request path, so it only compares numbers and puts an alert on a bounded
queue (a full queue drops the alert and counts it; the next request over the threshold brings it
back). The background task claims each (alert, webhook) pair, so it is posted once per period
however many workers, replicas or restarts see the crossing, and retries a failing webhook with
exponential backoff. An alert that cannot be delivered gives its claim back, to be tried again
on a later crossing.

When one request jumps over several thresholds, only the highest is posted.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from gateway.core.types import BudgetUsage
from gateway.observability.alerts.claims import Claims, digest
from gateway.observability.metrics import GatewayMetrics
from gateway.pipeline.record import RequestRecord

log = logging.getLogger("gateway.alerts")

MAX_BACKOFF_S = 300.0
MAX_PARALLEL_DELIVERIES = 8
MAX_SEEN = 100_000
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Alert:
    usage: BudgetUsage
    threshold_pct: int

    @property
    def key(self) -> str:
        u = self.usage
        period = u.period_start.isoformat() if u.period_start is not None else "all"
        # The budget is part of the key: a raised budget starts its thresholds afresh.
        return f"{u.scope}:{u.id}:{period}:{u.budget_usd.normalize()}:{self.threshold_pct}"

    @property
    def until(self) -> float | None:
        return self.usage.period_end.timestamp() if self.usage.period_end is not None else None


def message(alert: Alert) -> dict[str, Any]:
    """A Slack-compatible body (`text`), with the same facts structured for other receivers."""
    u = alert.usage
    used = (u.spent_usd / u.budget_usd * HUNDRED) if u.budget_usd > 0 else HUNDRED
    period = ""
    if u.period_start is not None and u.period_end is not None:
        period = f" in the period {u.period_start:%Y-%m-%d %H:%M} to {u.period_end:%Y-%m-%d %H:%M} UTC"
    text = (
        f"Budget alert: {u.scope} `{u.id}` has used {used:.0f}% of its budget{period} "
        f"(${u.spent_usd:.2f} of ${u.budget_usd:.2f}), crossing the {alert.threshold_pct}% threshold."
    )
    return {
        "text": text,
        "budget_alert": {
            "scope": u.scope,
            "id": u.id,
            "threshold_pct": alert.threshold_pct,
            "spent_usd": str(u.spent_usd),
            "budget_usd": str(u.budget_usd),
            "period_start": u.period_start.isoformat() if u.period_start is not None else None,
            "period_end": u.period_end.isoformat() if u.period_end is not None else None,
        },
    }


class BudgetAlerter:
    def __init__(
        self,
        *,
        webhooks: Sequence[str],
        claims: Claims,
        thresholds_pct: Sequence[int] = (50, 80, 100),
        scopes: Sequence[str] = ("key", "team"),
        metrics: GatewayMetrics | None = None,
        queue_size: int = 1000,
        max_attempts: int = 6,
        retry_base_s: float = 1.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.webhooks = list(webhooks)
        self.claims = claims
        self.thresholds = sorted(set(thresholds_pct))
        self.scopes = frozenset(scopes)
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.timeout_s = timeout_s
        self.queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=queue_size)
        # Alert keys this process has queued or settled, so a budget over a threshold does not
        # queue again on every request.
        self._seen: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(MAX_PARALLEL_DELIVERIES)

    # On the request path.

    def record(self, record: RequestRecord) -> None:
        for usage in record.budgets:
            self.check(usage)

    def check(self, usage: BudgetUsage) -> None:
        if usage.scope not in self.scopes or usage.budget_usd <= 0 or not self.webhooks:
            return
        used = usage.spent_usd / usage.budget_usd * HUNDRED
        crossed = [t for t in self.thresholds if used >= t]
        if not crossed:
            return
        alerts = [Alert(usage, t) for t in crossed]
        if alerts[-1].key in self._seen:
            return
        if len(self._seen) >= MAX_SEEN:
            self._seen.clear()  # the claims still hold; forgetting only costs a claim attempt
        self._seen.update(a.key for a in alerts)
        try:
            self.queue.put_nowait(alerts[-1])
        except asyncio.QueueFull:
            self._seen.discard(alerts[-1].key)
            self._count(usage.scope, "dropped")
            log.warning("budget alert queue full; alert dropped", extra={"fields": {"scope": usage.scope}})

    # In the background.

    async def start(self) -> None:
        if self._runner is None and self.webhooks:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, trust_env=False)
            self._runner = asyncio.create_task(self._run(), name="budget-alerts")

    async def drain(self) -> None:
        """Until every queued alert is delivered or given up."""
        await self.queue.join()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self, grace_s: float = 2.0) -> None:
        if self._runner is not None:
            try:
                await asyncio.wait_for(self.drain(), grace_s)
            except TimeoutError:
                pass  # what is left is cancelled; its claims are given back
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runner = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            alert = await self.queue.get()
            for url in self.webhooks:
                await self._slots.acquire()
                task = asyncio.create_task(self._deliver(alert, url))
                self._tasks.add(task)
                task.add_done_callback(self._done)
            self.queue.task_done()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _deliver(self, alert: Alert, url: str) -> None:
        scope = alert.usage.scope
        # One claim per webhook: one that answered is not posted to again when another failed.
        claim = f"{alert.key}:{digest(url)}"
        body = message(alert)
        claimed = delivered = False
        try:
            for attempt in range(self.max_attempts):
                if attempt:
                    self._count(scope, "retried")
                    await asyncio.sleep(self._backoff(attempt))
                try:
                    if not claimed:
                        claimed = await self.claims.claim(claim, alert.until)
                        if not claimed:
                            return  # another worker, replica or an earlier run has sent it
                    delivered = await self._post(url, body)
                except Exception as exc:  # a failing claim store or webhook: try again later
                    log.debug("budget alert attempt failed", extra={"fields": {"error": type(exc).__name__}})
                if delivered:
                    self._count(scope, "sent")
                    return
            self._count(scope, "failed")
            log.warning(
                "budget alert not delivered",
                extra={"fields": {"scope": scope, "id": alert.usage.id, "attempts": self.max_attempts}},
            )
        finally:
            if claimed and not delivered:
                self._seen.discard(alert.key)
                await asyncio.shield(self._release(claim))

    async def _post(self, url: str, body: dict[str, Any]) -> bool:
        assert self._client is not None
        response = await self._client.post(url, json=body)
        return 200 <= response.status_code < 300

    async def _release(self, claim: str) -> None:
        try:
            await self.claims.release(claim)
        except Exception:  # the claim then expires with its period
            log.debug("budget alert claim not released")

    def _backoff(self, attempt: int) -> float:
        delay = min(MAX_BACKOFF_S, self.retry_base_s * 2 ** (attempt - 1))
        return delay * random.uniform(0.8, 1.2)

    def _count(self, scope: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.alert_delivery(scope, outcome)
