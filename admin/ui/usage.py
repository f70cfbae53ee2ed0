"""Reading the ledger for the pages: spend totals and groups, and a sample of recent requests.

All through `LedgerApi` (spend from the per-day rollup, rows page by page). Days are UTC days,
as the ledger keeps them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from admin.ledger_api import MAX_RANGE_DAYS
from admin.params import MAX_IDS
from admin.ui.backend import Backend
from admin.ui.formats import decimal, percentile
from admin.ui.session import Session
from gateway.accounting.ledger.queries import MAX_PAGE
from gateway.core.types import BudgetPeriod

# Latency percentiles come from the newest rows of the day, at most this many.
SAMPLE_PAGES = 3


def today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int = 0
    errors: int = 0
    cost_usd: Decimal = Decimal(0)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def of(cls, record: dict[str, Any]) -> Totals:
        return cls(int(record["requests"]), int(record["errors"]), decimal(record["cost_usd"]) or Decimal(0),
                   int(record["prompt_tokens"]), int(record["completion_tokens"]))

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True, slots=True)
class Latency:
    sample: int
    p50_ms: float | None
    p95_ms: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Latency:
        return cls(len(values), percentile(values, 0.5), percentile(values, 0.95))


class Usage:
    def __init__(self, backend: Backend, session: Session) -> None:
        self.backend = backend
        self.session = session

    async def total(self, start: date, end: date, **filters: str | None) -> Totals:
        answer = await self.backend.get(self.session, self.backend.ledger.spend,
                                        {"start": start.isoformat(), "end": end.isoformat(), **filters})
        return Totals.of(answer["total"])

    async def grouped(self, start: date, end: date, by: str, **filters: str | None) -> dict[str | None, Totals]:
        answer = await self.backend.get(self.session, self.backend.ledger.spend,
                                        {"start": start.isoformat(), "end": end.isoformat(), "group_by": by,
                                         **filters})
        return {group[by]: Totals.of(group) for group in answer["data"]}

    async def recent_rows(self, since: datetime, pages: int = SAMPLE_PAGES) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(pages):
            page = await self.backend.get(self.session, self.backend.ledger.requests,
                                          {"start": since.isoformat(), "limit": MAX_PAGE, "cursor": cursor})
            rows += page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        return rows

    async def period_spend(self, scope: str, items: Iterable[tuple[str, BudgetPeriod | str | None]]
                           ) -> dict[str, Decimal]:
        """Each key's (or team's) spend in its budget period so far, from the ledger, by id."""
        wanted: dict[str | None, set[str]] = {}
        for item_id, period in items:
            wanted.setdefault(None if period is None else str(period), set()).add(item_id)
        end = today()
        found: dict[str, Decimal] = {}

        async def one(period: str | None, ids: list[str]) -> None:
            # Only these ids' rows (`keys=` / `teams=`): grouping the whole rollup by key read every
            # key's rows of the period (435 ms at 2,000 keys over a month,
            # loadtests/results/ledger-scale-2026-12-07.md) to show a page of 50.
            groups = await self.grouped(period_start(period, end), end, scope, **{f"{scope}s": ",".join(ids)})
            for item_id in ids:
                found[item_id] = groups[item_id].cost_usd if item_id in groups else Decimal(0)

        chunks = [(period, ids[i : i + MAX_IDS]) for period, all_ids in wanted.items()
                  for ids in [sorted(all_ids)] for i in range(0, len(ids), MAX_IDS)]
        await asyncio.gather(*(one(period, ids) for period, ids in chunks))
        return found


def period_start(period: str | None, day: date) -> date:
    """The first UTC day of the budget period `day` is in (a budget that never resets: the ledger's reach)."""
    if period == "daily":
        return day
    if period == "weekly":
        return day - timedelta(days=day.weekday())
    if period == "monthly":
        return day.replace(day=1)
    return day - timedelta(days=MAX_RANGE_DAYS)


def answered(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of requests that were answered: refusals take no time and would flatter the percentiles."""
    return [row for row in rows if row["status"] < 400]


def latency_by(rows: Iterable[dict[str, Any]], field: str) -> dict[str, Latency]:
    values: dict[str, list[float]] = {}
    for row in answered(rows):
        if row.get(field):
            values.setdefault(row[field], []).append(float(row["latency_ms"]))
    return {name: Latency.of(v) for name, v in values.items()}


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
