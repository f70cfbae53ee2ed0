"""The store's `Database` on SQLite: the embedded default, one file under `settings.data_dir`.

The stdlib driver blocks, so every statement runs on one dedicated thread, off the event
loop. One connection per process and an asyncio lock around each use keep the statements of
one transaction together; other processes sharing the file wait on SQLite's own lock.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import orjson

from gateway.db.connect import open_sqlite
from gateway.db.migrate import migrate_sqlite
from gateway.identity.store.base import Conflict, StoreUnavailable, UnknownReference

T = TypeVar("T")
_JSON_COLUMNS = ("metadata", "details", "allowed_models")


@lru_cache(maxsize=256)
def _dialect(sql: str) -> str:
    # The shared SQL is written for Postgres: `$1` becomes `?1`, and SQLite needs no row locks
    # because BEGIN IMMEDIATE already holds the database's write lock.
    return re.sub(r"\$(\d+)", r"?\1", sql).replace(" FOR UPDATE", "")


def _param(value: Any) -> Any:
    if isinstance(value, datetime):
        # One fixed format, always UTC: stored times then sort and compare as text.
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value).decode()
    return value


def _column(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "at" or name.endswith("_at"):
        return datetime.fromisoformat(value)
    if name.endswith(_JSON_COLUMNS):
        return orjson.loads(value)
    if name == "is_admin":
        return bool(value)
    return value


def _row(row: sqlite3.Row) -> dict[str, Any]:
    return {name: _column(name, row[name]) for name in row.keys()}


def _translate(exc: sqlite3.Error) -> Exception:
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in text:
        return Conflict("A row with the same unique value already exists.")
    if isinstance(exc, sqlite3.IntegrityError) and "FOREIGN KEY" in text:
        return UnknownReference("The change refers to a row that does not exist.")
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailable("The key store (SQLite) is unavailable: " + text)
    return exc


class _SqliteTx:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        conn = self._db.conn
        return await self._db.run(lambda: [_row(r) for r in conn.execute(_dialect(sql), [_param(a) for a in args])])

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        conn = self._db.conn

        def one() -> dict[str, Any] | None:
            rows = conn.execute(_dialect(sql), [_param(a) for a in args]).fetchall()
            return _row(rows[0]) if rows else None

        return await self._db.run(one)

    async def execute(self, sql: str, *args: Any) -> None:
        conn = self._db.conn
        await self._db.run(lambda: conn.execute(_dialect(sql), [_param(a) for a in args]))


class SqliteDatabase:
    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self.conn = conn
        self._executor = executor
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-sqlite")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, open_sqlite, path)
            await loop.run_in_executor(executor, migrate_sqlite, conn)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(conn, executor)

    async def run(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except sqlite3.Error as exc:
            raise _translate(exc) from None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteTx]:
        async with self._lock:
            await self.run(lambda: self.conn.execute("BEGIN IMMEDIATE"))
            try:
                yield _SqliteTx(self)
                await self.run(lambda: self.conn.execute("COMMIT"))
            except BaseException:
                if self.conn.in_transaction:
                    await asyncio.shield(self.run(lambda: self.conn.execute("ROLLBACK")))
                raise

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[_SqliteTx]:
        async with self._lock:
            yield _SqliteTx(self)

    async def close(self) -> None:
        async with self._lock:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.conn.close)
        self._executor.shutdown(wait=True)
