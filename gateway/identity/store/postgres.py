"""The store's `Database` on PostgreSQL through an asyncpg pool.

asyncpg's exceptions stop here: a lost or refused connection, a timeout or a server going
down becomes `StoreUnavailable` (503); a broken constraint becomes the store's own error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from gateway.db.connect import PgConnection, create_pg_pool, describe_db_error
from gateway.db.migrate import migrate_postgres
from gateway.identity.store.base import Conflict, StoreUnavailable, UnknownReference

ACQUIRE_TIMEOUT_S = 5.0

_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict("A row with the same unique value already exists.")
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return UnknownReference("The change refers to a row that does not exist.")
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable("The key store (PostgreSQL) is unavailable; try again shortly.")
    return exc


class _PgTx:
    def __init__(self, conn: PgConnection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._conn.fetch(sql, *args)]

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        row = await self._conn.fetchrow(sql, *args)
        return None if row is None else dict(row)

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(sql, *args)


class PostgresDatabase:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, dsn: str, *, max_size: int = 10) -> PostgresDatabase:
        try:
            pool = await create_pg_pool(dsn, max_size=max_size)
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            # Only the operator sees this (start-up); the URL's password never appears in it.
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {describe_db_error(exc, dsn)}") from None
        try:
            async with pool.acquire() as conn:
                await migrate_postgres(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PgTx]:
        try:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
                yield _PgTx(conn)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise _translate(exc) from None

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[_PgTx]:
        try:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                yield _PgTx(conn)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise _translate(exc) from None

    async def close(self) -> None:
        await self.pool.close()
