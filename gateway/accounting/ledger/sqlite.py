"""The SQLite sink of the embedded default: the same rows and rollup as on Postgres.

sqlite3 blocks, so every call runs in a worker thread, one at a time (the writer awaits each).
Several worker processes may share the file: each batch is one BEGIN IMMEDIATE transaction, so
the rollup's read-add-write of exact decimal text cannot interleave with another writer's.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from gateway.accounting.ledger.rollup import roll_up
from gateway.accounting.ledger.row import COLUMNS, EPOCH, LedgerRow, values
from gateway.accounting.ledger.sink import Maintenance, SinkRejected, SinkUnavailable
from gateway.db.connect import open_sqlite

_INSERT = (
    f"INSERT OR IGNORE INTO ledger_requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
)
_ROLLUP_KEY = "day = ? AND team_id = ? AND key_id = ? AND model = ? AND provider = ?"
_COUNTS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "estimated", "unpriced")
_UPSERT = f"""
INSERT INTO ledger_daily (day, team_id, key_id, model, provider, {", ".join(_COUNTS)}, cost_usd)
VALUES (?, ?, ?, ?, ?, {", ".join("?" * len(_COUNTS))}, ?)
ON CONFLICT (day, team_id, key_id, model, provider) DO UPDATE SET
    {", ".join(f"{c} = {c} + excluded.{c}" for c in _COUNTS)}, cost_usd = excluded.cost_usd
"""



def iso_ts(ts_us: int) -> str:
    """Fixed-width ISO-8601 UTC with microseconds: sorts as text in time order."""
    return (EPOCH + timedelta(microseconds=ts_us)).isoformat(timespec="microseconds")


class SQLiteSink:
    name = "sqlite"

    def __init__(self, path: Path, *, retention_days: int) -> None:
        self.path = path
        self._retention_days = retention_days
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self._conn is None:
            try:
                self._conn = await asyncio.to_thread(open_sqlite, self.path)
            except (sqlite3.Error, OSError) as exc:
                raise SinkUnavailable(f"cannot open {self.path} ({exc})") from None

    async def write(self, rows: Sequence[LedgerRow], *, replay: bool = False) -> int:
        # One path for both: INSERT OR IGNORE tells which rows are new, and only those roll up.
        return await asyncio.to_thread(self._run, self._write, rows)

    async def maintain(self, today: date) -> Maintenance:
        return await asyncio.to_thread(self._run, self._maintain, today)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)

    def _run(self, work: Any, *args: Any) -> Any:
        if self._conn is None:
            raise SinkUnavailable("not open")
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn, *args)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        except sqlite3.IntegrityError as exc:
            raise SinkRejected(str(exc)) from None
        except sqlite3.Error as exc:
            # Locked for too long, no such table yet, disk full: all "not now".
            raise SinkUnavailable(f"{type(exc).__name__}: {exc}") from None

    def _write(self, conn: sqlite3.Connection, rows: Sequence[LedgerRow]) -> int:
        # rowcount 0: the row was there already (a replay); only new rows roll up.
        inserted = [row for row in rows if conn.execute(_INSERT, _record(row)).rowcount == 1]
        for (day, *rest), totals in roll_up(inserted):
            key = (day.isoformat(), *rest)
            # Exact decimal text: added here in Decimal, never by SQLite in floats.
            current = conn.execute(f"SELECT cost_usd FROM ledger_daily WHERE {_ROLLUP_KEY}", key).fetchone()
            cost = totals.cost_usd + (Decimal(current[0]) if current else 0)
            conn.execute(_UPSERT, (*key, *totals.counts(), str(cost)))
        return len(inserted)

    def _maintain(self, conn: sqlite3.Connection, today: date) -> Maintenance:
        report = Maintenance()
        if self._retention_days > 0:
            cutoff = today - timedelta(days=self._retention_days)
            report.deleted_rows = conn.execute(
                "DELETE FROM ledger_requests WHERE ts < ?", (f"{cutoff.isoformat()}T00:00:00",)
            ).rowcount
        return report


def _record(row: LedgerRow) -> tuple[Any, ...]:
    cost = str(row.cost_usd) if row.cost_usd is not None else None
    return values(row, iso_ts(row.ts_us), cost, orjson.dumps(row.tags).decode())
