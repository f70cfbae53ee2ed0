"""Forecast alerts and gauges: every `forecast_interval_s`, each budget's projection is computed;
a budget projected to run out before its period ends is posted to the alert webhooks once per
period (claimed as budget alerts are, so once across workers and replicas), and the projections
are exported as gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx

from gateway.accounting.forecasts import BudgetForecast, Forecasts
from gateway.identity.store.base import StoreUnavailable
from gateway.observability.alerts.claims import Claims, digest
from gateway.observability.metrics import GatewayMetrics

log = logging.getLogger("gateway.alerts")


def message(f: BudgetForecast) -> dict[str, Any]:
    p = f.projection
    text = (f"Budget forecast: {f.scope} `{f.name}` ({f.id}) is projected to spend ${p.projected} of its "
            f"${p.budget} budget by {f.period_end} (80% interval ${p.low} to ${p.high}) and to run out on "
            f"{p.runs_out_on}.")
    record = f.record()
    record.pop("history")
    record.pop("forecast")
    return {"text": text, "budget_forecast": record}


class ForecastWatcher:
    def __init__(self, forecasts: Forecasts, *, interval_s: float, metrics: GatewayMetrics | None,
                 webhooks: Sequence[str], claims: Claims | None, key_labels: bool = False,
                 timeout_s: float = 10.0) -> None:
        self.forecasts = forecasts
        self.interval_s = interval_s
        self.metrics = metrics
        self.webhooks = list(webhooks)
        self.claims = claims
        self.key_labels = key_labels
        self.timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.interval_s > 0:
            self._task = asyncio.create_task(self._loop(), name="forecast-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except StoreUnavailable as exc:
                log.warning("budget forecasts: the database is unavailable (%s); trying again later", exc)
            except Exception:
                log.exception("budget forecasts failed; trying again later")
            await asyncio.sleep(self.interval_s)

    async def run_once(self) -> list[BudgetForecast]:
        forecasts = await self.forecasts.all()
        for f in forecasts:
            self._export(f)
        overruns = [f for f in forecasts if f.record()["runs_out_before_period_end"]]
        if overruns and self.webhooks and self.claims is not None:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                for f in overruns:
                    await self._alert(client, f)
        return forecasts

    def _export(self, f: BudgetForecast) -> None:
        m = self.metrics
        if m is None or (f.scope == "key" and not self.key_labels):
            return
        p = f.projection
        m.budget_projected.labels(f.scope, f.id).set(float(p.projected))
        m.budget_projected_overrun.labels(f.scope, f.id).set(1.0 if f.record()["runs_out_before_period_end"] else 0.0)

    async def _alert(self, client: httpx.AsyncClient, f: BudgetForecast) -> None:
        assert self.claims is not None
        key = digest(f"forecast:{f.scope}:{f.id}:{f.period}:{f.projection.budget}")
        until = datetime.combine(f.period_end + timedelta(days=1), time(), UTC).timestamp()
        if not await self.claims.claim(key, until):
            return
        body = message(f)
        try:
            for url in self.webhooks:
                response = await client.post(url, json=body)
                response.raise_for_status()
        except httpx.HTTPError as exc:
            # Given back: the next round tries again.
            log.warning("budget forecast alert for %s %s not delivered (%s)", f.scope, f.id, type(exc).__name__)
            await self.claims.release(key)
