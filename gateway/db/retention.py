"""Retention of the tables `gateway db maintain` sweeps besides the ledger's rows and stored responses.

The ledger's rows (partitions dropped, or rows deleted on SQLite) and stored responses have their
own sweeps (gateway/accounting/ledger/, gateway/dialects/responses/store.py); this deletes the audit
log's entries and the per-day rollup's days past theirs. 0 keeps a table for ever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from gateway.identity.store.sql import Database


@dataclass(frozen=True, slots=True)
class Retention:
    audit_days: int = 0
    ledger_daily_days: int = 0


async def sweep(db: Database, retention: Retention, today: date, *, postgres: bool) -> dict[str, int]:
    """Rows deleted per table."""
    deleted: dict[str, int] = {}
    async with db.transaction() as tx:
        if retention.audit_days > 0:
            cutoff = datetime.combine(today - timedelta(days=retention.audit_days), datetime.min.time(), UTC)
            deleted["audit_log"] = len(await tx.fetch("DELETE FROM audit_log WHERE at < $1 RETURNING 1", cutoff))
        if retention.ledger_daily_days > 0:
            cutoff_day = today - timedelta(days=retention.ledger_daily_days)
            # A date on PostgreSQL; 'YYYY-MM-DD' text, which sorts the same, on SQLite.
            day = cutoff_day if postgres else cutoff_day.isoformat()
            tables = ("ledger_daily", "ledger_daily_teams") if postgres else ("ledger_daily",)
            for table in tables:
                deleted[table] = len(await tx.fetch(f"DELETE FROM {table} WHERE day < $1 RETURNING 1", day))
    return deleted
