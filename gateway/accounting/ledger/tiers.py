"""Spend and requests of one `complexity` model by tier, from the ledger's rows.

Read from `ledger_requests` (the rollup has no tier), over a range of days, on the key store's
`Database` (the ledger shares its database). Money is summed exactly: by PostgreSQL's numeric, or
in Python from SQLite's decimal text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from gateway.identity.store.sql import Database


@dataclass(slots=True)
class TierTotals:
    tier: str | None
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced: int = 0
    mean_score: float | None = None


async def by_tier(db: Database, model: str, start: date, end: date, *, postgres: bool) -> list[TierTotals]:
    since = datetime.combine(start, time(), UTC)
    until = datetime.combine(end + timedelta(days=1), time(), UTC)
    where = "requested_model = $1 AND ts >= $2 AND ts < $3"
    async with db.reader() as tx:
        rows = await tx.fetch(
            "SELECT complexity_tier AS tier, count(*) AS requests, sum(prompt_tokens) AS prompt_tokens, "
            "sum(completion_tokens) AS completion_tokens, sum(cached_tokens) AS cached_tokens, "
            "avg(complexity_score) AS mean_score, sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) AS unpriced"
            + (", coalesce(sum(cost_usd), 0) AS cost_usd" if postgres else "")
            + f" FROM ledger_requests WHERE {where} GROUP BY complexity_tier ORDER BY complexity_tier",
            model, since, until)
        costs: dict[str | None, Decimal] = {}
        if not postgres:
            for row in await tx.fetch(f"SELECT complexity_tier AS tier, cost_usd FROM ledger_requests WHERE {where} "
                                      "AND cost_usd IS NOT NULL", model, since, until):
                costs[row["tier"]] = costs.get(row["tier"], Decimal(0)) + Decimal(row["cost_usd"])
    return [TierTotals(
        tier=row["tier"], requests=int(row["requests"]), prompt_tokens=int(row["prompt_tokens"] or 0),
        completion_tokens=int(row["completion_tokens"] or 0), cached_tokens=int(row["cached_tokens"] or 0),
        cost_usd=Decimal(row["cost_usd"]) if postgres else costs.get(row["tier"], Decimal(0)),
        unpriced=int(row["unpriced"] or 0),
        mean_score=None if row["mean_score"] is None else round(float(row["mean_score"]), 4),
    ) for row in rows]
