"""Reading the ledger back: spend grouped over the per-day rollup, and raw rows page by page.

Spend never touches `ledger_requests`: it sums `ledger_daily`, which holds one row per day,
team, key, model and provider (on Postgres, `ledger_daily_teams`, the same without the key, when
the question is not about keys). Raw rows are keyset-paginated, newest first, on (ts, request_id),
so a page costs the same however deep it is.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import orjson

from gateway.accounting.ledger.rollup import Totals
from gateway.accounting.ledger.row import COLUMNS, EPOCH, LedgerRow
from gateway.accounting.ledger.sqlite import iso_ts
from gateway.db.connect import create_pg_pool, open_sqlite

# What spend may be grouped by -> the rollup column.
GROUPS: dict[str, str] = {"team": "team_id", "key": "key_id", "model": "model", "provider": "provider", "day": "day"}
MAX_PAGE = 1000
STREAM_CHUNK = 1000
_US = timedelta(microseconds=1)


class QueryError(ValueError):
    """A query the ledger cannot answer as asked (bad cursor)."""


@dataclass(frozen=True, slots=True)
class SpendQuery:
    start: date
    end: date  # inclusive
    group_by: tuple[str, ...] = ()
    team: str | None = None
    key: str | None = None
    model: str | None = None
    provider: str | None = None
    # Any of these (empty: no such filter): the admin UI asks for a page of keys or teams at once.
    teams: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()


_COUNTS = tuple(f.name for f in fields(Totals) if f.name != "cost_usd")


@dataclass(frozen=True, slots=True)
class SpendGroup:
    # Group name ("team", "day", ...) -> value; None where the rows had none (e.g. no team).
    key: dict[str, str | None]
    totals: Totals


@dataclass(frozen=True, slots=True)
class Cursor:
    ts_us: int
    request_id: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(orjson.dumps([self.ts_us, self.request_id])).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            ts_us, request_id = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
            raise QueryError("cursor is not one this API returned") from None
        if not isinstance(ts_us, int) or not isinstance(request_id, str):
            raise QueryError("cursor is not one this API returned")
        return cls(ts_us, request_id)


@dataclass(frozen=True, slots=True)
class RowQuery:
    start: datetime
    end: datetime  # exclusive
    team: str | None = None
    key: str | None = None
    model: str | None = None
    status: int | None = None
    limit: int = 100
    after: Cursor | None = None


@dataclass(frozen=True, slots=True)
class RowPage:
    rows: list[LedgerRow]
    next: Cursor | None


class LedgerQueries(Protocol):
    async def spend(self, query: SpendQuery) -> list[SpendGroup]: ...

    async def rows(self, query: RowQuery) -> RowPage: ...

    def stream_rows(self, query: RowQuery) -> AsyncIterator[LedgerRow]:
        """Every matching row, newest first, from one query (an export: no page re-sorts the range)."""
        ...

    async def close(self) -> None: ...


def _filters(pairs: Sequence[tuple[str, object]], placeholder: Any) -> tuple[list[str], list[object]]:
    clauses: list[str] = []
    args: list[object] = []
    for column, value in pairs:
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = {placeholder(len(args))}")
    return clauses, args


def _spend_filters(query: SpendQuery) -> list[tuple[str, object]]:
    return [("team_id", query.team), ("key_id", query.key), ("model", query.model), ("provider", query.provider)]


def _spend_lists(query: SpendQuery) -> list[tuple[str, tuple[str, ...]]]:
    return [(column, ids) for column, ids in (("team_id", query.teams), ("key_id", query.keys)) if ids]


def _row_filters(query: RowQuery) -> list[tuple[str, object]]:
    return [("team_id", query.team), ("key_id", query.key), ("requested_model", query.model),
            ("status", query.status)]  # fmt: skip


def _page(rows: list[LedgerRow], limit: int) -> RowPage:
    if len(rows) > limit:
        rows = rows[:limit]
        return RowPage(rows, Cursor(rows[-1].ts_us, rows[-1].request_id))
    return RowPage(rows, None)


class PostgresQueries:
    def __init__(self, dsn: str, pool_size: int = 2) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:
                self._pool = await create_pg_pool(self._dsn, max_size=self._pool_size)
            return self._pool

    @staticmethod
    def spend_sql(query: SpendQuery) -> tuple[str, list[object]]:
        """The statement `spend` runs and its arguments (loadtests/bench_ledger_scale.py EXPLAINs it)."""
        columns = [GROUPS[g] for g in query.group_by]
        clauses, args = _filters(_spend_filters(query), lambda n: f"${n + 2}")
        for column, ids in _spend_lists(query):
            args.append(list(ids))
            clauses.append(f"{column} = ANY(${len(args) + 2}::text[])")
        where = " AND ".join(["day >= $1", "day <= $2", *clauses])
        select = ", ".join([*columns, *(f"sum({c})::bigint AS {c}" for c in _COUNTS), "sum(cost_usd) AS cost_usd"])
        group = f" GROUP BY {', '.join(columns)} ORDER BY {', '.join(columns)}" if columns else ""
        # Without keys in the question, the rollup without them (postgres/0111): fewer rows to add.
        keyless = query.key is None and not query.keys and "key" not in query.group_by
        table = "ledger_daily_teams" if keyless else "ledger_daily"
        return f"SELECT {select} FROM {table} WHERE {where}{group}", [query.start, query.end, *args]

    async def spend(self, query: SpendQuery) -> list[SpendGroup]:
        sql, args = self.spend_sql(query)
        pool = await self._get_pool()
        records = await pool.fetch(sql, *args)
        groups = []
        for record in records:
            if record["requests"] is None:
                continue  # no group and no rows: the aggregate over nothing
            totals = Totals(**{c: record[c] for c in _COUNTS}, cost_usd=record["cost_usd"])
            key = {g: _group_value(record[GROUPS[g]]) for g in query.group_by}
            groups.append(SpendGroup(key, totals))
        return groups

    @staticmethod
    def rows_sql(query: RowQuery) -> tuple[str, list[object]]:
        """The statement `rows` runs, without its LIMIT, and its arguments."""
        clauses, args = _filters(_row_filters(query), lambda n: f"${n + 2}")
        conditions = ["ts >= $1", "ts < $2", *clauses]
        if query.after is not None:
            args += [EPOCH + timedelta(microseconds=query.after.ts_us), query.after.request_id]
            conditions.append(f"(ts, request_id) < (${len(args) + 1}, ${len(args) + 2})")
        sql = (f"SELECT {', '.join(COLUMNS)} FROM ledger_requests WHERE {' AND '.join(conditions)} "
               "ORDER BY ts DESC, request_id DESC")  # fmt: skip
        return sql, [query.start, query.end, *args]

    async def rows(self, query: RowQuery) -> RowPage:
        sql, args = self.rows_sql(query)
        pool = await self._get_pool()
        records = await pool.fetch(f"{sql} LIMIT {query.limit + 1}", *args)
        return _page([_row_from_pg(r) for r in records], query.limit)

    async def stream_rows(self, query: RowQuery) -> AsyncIterator[LedgerRow]:
        sql, args = self.rows_sql(query)
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            async for record in conn.cursor(sql, *args, prefetch=STREAM_CHUNK):
                yield _row_from_pg(record)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class SQLiteQueries:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def _run(self, sql: str, args: Sequence[object]) -> list[sqlite3.Row]:
        async with self._lock:
            if self._conn is None:
                self._conn = await asyncio.to_thread(open_sqlite, self._path)
            conn = self._conn
            return await asyncio.to_thread(lambda: conn.execute(sql, args).fetchall())

    async def spend(self, query: SpendQuery) -> list[SpendGroup]:
        clauses, args = _filters(_spend_filters(query), lambda n: "?")
        for column, ids in _spend_lists(query):
            args += ids
            clauses.append(f"{column} IN ({', '.join('?' * len(ids))})")
        where = " AND ".join(["day >= ?", "day <= ?", *clauses])
        # Costs are exact decimal text in SQLite: summed here, in Decimal, not by SQL in floats.
        columns = list(dict.fromkeys(GROUPS[g] for g in query.group_by))
        sql = f"SELECT {', '.join([*columns, *_COUNTS, 'cost_usd'])} FROM ledger_daily WHERE {where}"
        records = await self._run(sql, [query.start.isoformat(), query.end.isoformat(), *args])
        groups: dict[tuple[str, ...], Totals] = {}
        for record in records:
            totals = groups.setdefault(tuple(record[c] for c in columns), Totals())
            totals.add(Totals(**{c: record[c] for c in _COUNTS}, cost_usd=Decimal(record["cost_usd"])))
        return [
            SpendGroup({g: _group_value(values[columns.index(GROUPS[g])]) for g in query.group_by}, totals)
            for values, totals in sorted(groups.items())
        ]

    def _rows_sql(self, query: RowQuery) -> tuple[str, list[object]]:
        clauses, args = _filters(_row_filters(query), lambda n: "?")
        conditions = ["ts >= ?", "ts < ?", *clauses]
        if query.after is not None:
            conditions.append("(ts, request_id) < (?, ?)")
            args += [iso_ts(query.after.ts_us), query.after.request_id]
        sql = (f"SELECT {', '.join(COLUMNS)} FROM ledger_requests WHERE {' AND '.join(conditions)} "
               "ORDER BY ts DESC, request_id DESC")  # fmt: skip
        start, end = (iso_ts((t - EPOCH) // _US) for t in (query.start, query.end))
        return sql, [start, end, *args]

    async def rows(self, query: RowQuery) -> RowPage:
        sql, args = self._rows_sql(query)
        records = await self._run(f"{sql} LIMIT {query.limit + 1}", args)
        return _page([_row_from_sqlite(r) for r in records], query.limit)

    async def stream_rows(self, query: RowQuery) -> AsyncIterator[LedgerRow]:
        sql, args = self._rows_sql(query)
        async with self._lock:
            if self._conn is None:
                self._conn = await asyncio.to_thread(open_sqlite, self._path)
            cursor = await asyncio.to_thread(self._conn.execute, sql, args)
            try:
                while chunk := await asyncio.to_thread(cursor.fetchmany, STREAM_CHUNK):
                    for record in chunk:
                        yield _row_from_sqlite(record)
            finally:
                cursor.close()

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)


def _group_value(value: object) -> str | None:
    if isinstance(value, date):
        return value.isoformat()
    return str(value) if value not in (None, "") else None


def _row_from_pg(record: asyncpg.Record) -> LedgerRow:
    values = dict(record.items())
    values["ts_us"] = (values.pop("ts") - EPOCH) // _US
    return LedgerRow(**values)


def _row_from_sqlite(record: sqlite3.Row) -> LedgerRow:
    values = {name: record[name] for name in COLUMNS}
    values["ts_us"] = (datetime.fromisoformat(values.pop("ts")) - EPOCH) // _US
    for flag in ("fallback", "stream", "cancelled", "tokens_estimated", "cache_hit"):
        values[flag] = bool(values[flag])
    values["cost_usd"] = Decimal(values["cost_usd"]) if values["cost_usd"] is not None else None
    values["tags"] = orjson.loads(values["tags"])
    return LedgerRow(**values)
