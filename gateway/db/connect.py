"""Opening the two databases the gateway knows: PostgreSQL through asyncpg, SQLite through the stdlib.

The SQLite file is the embedded default; it lives in `settings.data_dir` and may be shared by
several worker processes (WAL mode, a busy timeout instead of `database is locked`).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import asyncpg.pool
import orjson

from gateway.config.settings import Settings

# A connection of its own, or one borrowed from a pool (a proxy with the same methods).
PgConnection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

SQLITE_FILE = "gateway.db"
# How long a writer waits for another process's write to finish before giving up.
SQLITE_BUSY_MS = 10_000
# Connecting to Postgres (at start-up, and when the pool replaces a lost connection).
CONNECT_TIMEOUT_S = 5.0


class DatabaseUrlError(ValueError):
    pass


def postgres_dsn(settings: Settings) -> str | None:
    """The Postgres URL, or None for the embedded default."""
    if settings.database_url is None:
        return None
    url = settings.database_url.get_secret_value()
    if urlsplit(url).scheme not in ("postgres", "postgresql"):
        # The URL may hold a password: name only what was wrong with it.
        raise DatabaseUrlError("settings.database_url: must be a postgresql:// URL")
    return url


def sqlite_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / SQLITE_FILE


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, encoder=lambda value: orjson.dumps(value).decode(), decoder=orjson.loads, schema="pg_catalog"
        )


async def create_pg_pool(dsn: str, *, max_size: int = 10, command_timeout: float = 10.0) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=max_size, command_timeout=command_timeout, init=_init_connection,
        timeout=CONNECT_TIMEOUT_S,
    )
    assert pool is not None
    return pool


def open_sqlite(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: no implicit transactions; callers say BEGIN IMMEDIATE / COMMIT themselves.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=SQLITE_BUSY_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
    _use_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.row_factory = sqlite3.Row
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switching a file to WAL takes an exclusive lock, and when several processes open a new file
    at once SQLite may answer "database is locked" at once instead of waiting its busy timeout
    (workers starting together): wait that long here instead."""
    deadline = time.monotonic() + SQLITE_BUSY_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def describe_db_error(exc: BaseException, dsn: str | None) -> str:
    """One line about a database failure that never repeats the URL's password."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    password = urlsplit(dsn).password if dsn else None
    if password:
        text = text.replace(password, "***")
    return text
