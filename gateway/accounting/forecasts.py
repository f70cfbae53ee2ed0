"""Every budget's forecast: each team and key with a budget period, from the ledger's daily rollup.

For each: the spend so far in its current period, the projection at the period's end with its
interval, and the day the budget is projected to run out (gateway/accounting/forecast.py). Periods
are the limiter's (calendar-aligned in `limits_timezone`), read as the UTC days the rollup keeps,
so a period's first or last day may be off by the zone's offset. History: the last 8 weeks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from gateway.accounting.forecast import Projection, project
from gateway.accounting.limits.periods import current_period
from gateway.core.types import Limits
from gateway.identity.store.sql import Database, SqlStore

HISTORY_DAYS = 56
PAGE = 100


@dataclass(frozen=True, slots=True)
class BudgetForecast:
    scope: str  # "team" or "key"
    id: str
    name: str
    period: str
    period_start: date
    period_end: date  # the period's last day, included
    history: list[tuple[date, Decimal]]  # spend per day, oldest first, up to today
    projection: Projection

    def record(self) -> dict[str, object]:
        p = self.projection
        return {
            "object": "budget_forecast", "scope": self.scope, "id": self.id, "name": self.name,
            "period": self.period, "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(), "budget_usd": str(p.budget), "spent_usd": str(p.spent),
            "projected_usd": str(p.projected), "low_usd": str(p.low), "high_usd": str(p.high),
            "runs_out_on": p.runs_out_on.isoformat() if p.runs_out_on else None,
            "runs_out_before_period_end": p.runs_out_on is not None and p.runs_out_on <= self.period_end,
            "history": [[d.isoformat(), str(v)] for d, v in self.history],
            "forecast": [[d.isoformat(), str(v)] for d, v in p.daily],
        }


class Forecasts:
    def __init__(self, store: Callable[[], SqlStore], *, postgres: bool, timezone: str) -> None:
        self.store = store
        self.postgres = postgres
        self.tz = ZoneInfo(timezone)

    async def all(self, now: datetime | None = None) -> list[BudgetForecast]:
        now = now or datetime.now(UTC)
        today = now.astimezone(UTC).date()
        store = self.store()
        since = today - timedelta(days=HISTORY_DAYS)
        teams, keys = await self._budgeted(store)
        out: list[BudgetForecast] = []
        for scope, owners in (("team", teams), ("key", keys)):
            if not owners:
                continue
            spend = await _daily(store.db, scope, since, postgres=self.postgres)
            for owner_id, (name, limits) in owners.items():
                out.append(self._one(scope, owner_id, name, limits, spend.get(owner_id, []), now, today))
        return out

    def _one(self, scope: str, owner_id: str, name: str, limits: Limits, history: list[tuple[date, Decimal]],
             now: datetime, today: date) -> BudgetForecast:
        period = current_period(now.timestamp(), limits.budget_period, self.tz)
        assert period.start is not None and period.end is not None
        start = datetime.fromtimestamp(period.start, self.tz).date()
        end = datetime.fromtimestamp(period.end, self.tz).date() - timedelta(days=1)
        spent = sum((v for d, v in history if start <= d <= today), Decimal(0))
        projection = project(history, spent, today, end, limits.budget_usd)
        return BudgetForecast(scope, owner_id, name, period.name, start, end, history, projection)

    async def _budgeted(self, store: SqlStore) -> tuple[dict[str, tuple[str, Limits]], dict[str, tuple[str, Limits]]]:
        teams: dict[str, tuple[str, Limits]] = {}
        after: str | None = None
        while page := await store.list_teams(after=after, limit=PAGE):
            teams |= {t.id: (t.name, t.limits) for t in page if _budgeted(t.limits)}
            after = page[-1].id
            if len(page) < PAGE:
                break
        keys: dict[str, tuple[str, Limits]] = {}
        after = None
        while key_page := await store.list_keys(include_revoked=False, after=after, limit=PAGE):
            keys |= {k.id: (k.name, k.limits) for k in key_page if _budgeted(k.limits)}
            after = key_page[-1].id
            if len(key_page) < PAGE:
                break
        return teams, keys


def _budgeted(limits: Limits) -> bool:
    return limits.budget_usd is not None and limits.budget_period is not None


async def _daily(db: Database, scope: str, since: date, *, postgres: bool) -> dict[str, list[tuple[date, Decimal]]]:
    column = "team_id" if scope == "team" else "key_id"
    table = "ledger_daily_teams" if postgres and scope == "team" else "ledger_daily"
    async with db.reader() as tx:
        if postgres:
            rows = await tx.fetch(f"SELECT {column} AS owner, day, sum(cost_usd) AS cost FROM {table} "
                                  f"WHERE day >= $1 AND {column} <> '' GROUP BY {column}, day ORDER BY day", since)
        else:
            rows = await tx.fetch(f"SELECT {column} AS owner, day, cost_usd AS cost FROM {table} "
                                  f"WHERE day >= $1 AND {column} <> '' ORDER BY day", since.isoformat())
    by_owner: dict[str, dict[date, Decimal]] = {}
    for row in rows:
        day = row["day"] if isinstance(row["day"], date) else date.fromisoformat(row["day"])
        days = by_owner.setdefault(row["owner"], {})
        days[day] = days.get(day, Decimal(0)) + Decimal(str(row["cost"]))
    return {owner: sorted(days.items()) for owner, days in by_owner.items()}
