"""The per-day rollup of a batch, computed in Python: one entry per (day, team, key, model, provider),
and the same without the key (Postgres keeps both: `ledger_daily`, `ledger_daily_teams`).

Postgres computes the same from the rows an idempotent insert returned (postgres.py, replays);
fresh batches and SQLite use this. '' stands for "none", as in the `ledger_daily` table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal

from gateway.accounting.ledger.row import LedgerRow

RollupKey = tuple[date, str, str, str, str]


@dataclass(slots=True)
class Totals:
    """Counts and cost over a set of ledger rows: a rollup row, or a spend report's group."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: int = 0
    unpriced: int = 0
    cost_usd: Decimal = field(default_factory=Decimal)

    def add(self, other: Totals) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def counts(self) -> tuple[int, int, int, int, int, int, int]:
        return (self.requests, self.errors, self.prompt_tokens, self.completion_tokens, self.cached_tokens,
                self.estimated, self.unpriced)  # fmt: skip


def roll_up(rows: Iterable[LedgerRow]) -> list[tuple[RollupKey, Totals]]:
    """Sorted by key: every writer locks rollup rows in the same order, so writers never deadlock."""
    totals: dict[RollupKey, Totals] = {}
    for row in rows:
        key = (row.day, row.team_id or "", row.key_id or "", row.requested_model or "", row.provider or "")
        t = totals.get(key)
        if t is None:
            t = totals[key] = Totals()
        t.requests += 1
        t.errors += row.is_error
        t.prompt_tokens += row.prompt_tokens
        t.completion_tokens += row.completion_tokens
        t.cached_tokens += row.cached_tokens
        t.estimated += row.tokens_estimated
        if row.cost_usd is None:
            t.unpriced += 1
        else:
            t.cost_usd += row.cost_usd
    return sorted(totals.items())


TeamRollupKey = tuple[date, str, str, str]


def without_key(entries: Iterable[tuple[RollupKey, Totals]]) -> list[tuple[TeamRollupKey, Totals]]:
    """The same totals per (day, team, model, provider): `ledger_daily_teams`, sorted like `roll_up`."""
    totals: dict[TeamRollupKey, Totals] = {}
    for (day, team, _key, model, provider), t in entries:
        key = (day, team, model, provider)
        found = totals.get(key)
        if found is None:
            found = totals[key] = Totals()
        found.add(t)
    return sorted(totals.items())
