"""`open_store`: PostgreSQL when `database_url` is set, else the embedded SQLite file; migrated either way."""

from __future__ import annotations

from gateway.config.settings import Settings
from gateway.db.connect import postgres_dsn, sqlite_path
from gateway.identity.store.sql import SqlStore


async def open_store(settings: Settings) -> SqlStore:
    dsn = postgres_dsn(settings)
    if dsn is not None:
        from gateway.identity.store.postgres import PostgresDatabase

        return SqlStore(await PostgresDatabase.open(dsn, max_size=settings.database_pool_size))
    from gateway.identity.store.sqlite import SqliteDatabase

    return SqlStore(await SqliteDatabase.open(sqlite_path(settings)))
