"""`gateway db migrate` and `gateway db maintain`, each with `--config FILE`.

migrate applies pending migrations and exits; maintain makes the ledger's partitions ahead,
applies its retention, and deletes stored responses past theirs.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg

from gateway.config.file import ConfigError, KnownProviders, load_config
from gateway.config.settings import Settings
from gateway.db.connect import DatabaseUrlError, describe_db_error, open_sqlite, postgres_dsn, sqlite_path
from gateway.db.migrate import MigrationError, migrate_postgres, migrate_sqlite
from gateway.identity.store.base import StoreUnavailable

CONNECT_TIMEOUT_S = 10.0


def migrate_command(config_path: str, known_providers: KnownProviders) -> int:
    try:
        _, settings = load_config(config_path, known_providers)
        dsn = postgres_dsn(settings)
    except (ConfigError, DatabaseUrlError) as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        applied, where = asyncio.run(_migrate(settings, dsn))
    except MigrationError as exc:
        print(f"gateway db migrate: {exc}", file=sys.stderr)
        return 1
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error) as exc:
        print(f"gateway db migrate: cannot use the database: {describe_db_error(exc, dsn)}", file=sys.stderr)
        return 1
    for file in applied:
        print(f"applied {file}")
    if not applied:
        print(f"{where}: up to date")
    return 0


async def _migrate(settings: Settings, dsn: str | None) -> tuple[list[str], str]:
    if dsn is None:
        path = sqlite_path(settings)
        conn = open_sqlite(path)
        try:
            return migrate_sqlite(conn), str(path)
        finally:
            conn.close()
    pg = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        parts = urlsplit(dsn)
        return await migrate_postgres(pg), f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}"
    finally:
        await pg.close()



def maintain_command(config_path: str, known_providers: KnownProviders) -> int:
    from gateway.accounting.ledger.command import maintain_command as maintain_ledger

    status = maintain_ledger(config_path, known_providers)
    if status != 0:
        return status
    _, settings = load_config(config_path, known_providers)  # read once already: it is valid
    try:
        deleted = asyncio.run(_sweep_responses(settings))
    except StoreUnavailable as exc:
        print(f"gateway db maintain: {exc}", file=sys.stderr)
        return 1
    if deleted:
        print(f"deleted {deleted} stored responses past the retention of {settings.responses_retention_days} days")
    try:
        swept = asyncio.run(_sweep_tables(settings))
    except StoreUnavailable as exc:
        print(f"gateway db maintain: {exc}", file=sys.stderr)
        return 1
    for table, count in swept.items():
        print(f"deleted {count} rows of {table} past its retention")
    return 0


async def _sweep_tables(settings: Settings) -> dict[str, int]:
    from gateway.db.retention import Retention, sweep
    from gateway.identity.store import open_store

    store = await open_store(settings)
    try:
        retention = Retention(settings.audit_retention_days, settings.ledger_daily_retention_days)
        return await sweep(store.db, retention, datetime.now(UTC).date(), postgres=postgres_dsn(settings) is not None)
    finally:
        await store.close()


async def _sweep_responses(settings: Settings) -> int:
    from gateway.dialects.responses.store import ResponseStore
    from gateway.identity.store import open_store

    store = await open_store(settings)
    try:
        responses = ResponseStore(store.db, timedelta(days=settings.responses_retention_days))
        return await responses.sweep(datetime.now(UTC))
    finally:
        await store.close()
