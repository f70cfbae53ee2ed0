"""Spend against budget for keys and teams, at a glance.

The limiter's own counter (the admin API's `/spend`) is the truth when it reports one; until it
does (`spend: null`), the ledger's spend for the budget period so far stands in, and the page
says which it shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from admin.ui.backend import Backend
from admin.ui.formats import decimal
from admin.ui.session import Session
from admin.ui.usage import Usage

Source = Literal["limiter", "ledger"]


@dataclass(frozen=True, slots=True)
class Budget:
    spent: Decimal
    source: Source
    budget: Decimal | None
    period: str | None

    @property
    def remaining(self) -> Decimal | None:
        return None if self.budget is None else max(Decimal(0), self.budget - self.spent)

    @property
    def used(self) -> float | None:
        """The share of the budget spent, 0 to 1 (for the gauge)."""
        if self.budget is None:
            return None
        if self.budget == 0:
            return 1.0
        return min(1.0, float(self.spent / self.budget))

    @property
    def period_label(self) -> str:
        return {"daily": "today", "weekly": "this week", "monthly": "this month"}.get(self.period or "", "in total")


async def budgets(backend: Backend, session: Session, scope: Literal["key", "team"],
                  records: Sequence[dict[str, Any]]) -> dict[str, Budget]:
    """By id, for API records of keys or teams."""
    handler = backend.admin.key_spend if scope == "key" else backend.admin.team_spend
    param = "key_id" if scope == "key" else "team_id"
    reports = await asyncio.gather(*(backend.get(session, handler, **{param: r["id"]}) for r in records))
    missing = [(r["id"], r["budget_period"]) for r, report in zip(records, reports, strict=True)
               if report["spend"] is None]
    from_ledger = await Usage(backend, session).period_spend(scope, missing) if missing else {}
    result: dict[str, Budget] = {}
    for record, report in zip(records, reports, strict=True):
        budget, period = decimal(record["budget_usd"]), record["budget_period"]
        if report["spend"] is not None:
            spent = decimal(report["spend"]["spent_usd"]) or Decimal(0)
            result[record["id"]] = Budget(spent, "limiter", budget, period)
        else:
            result[record["id"]] = Budget(from_ledger.get(record["id"], Decimal(0)), "ledger", budget, period)
    return result
