"""Private databases on the shared PostgreSQL for a benchmark: made at the start, dropped at the end."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

PG_SERVER = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


async def admin_sql(sql: str) -> None:
    """A statement on the server's `postgres` database (CREATE or DROP DATABASE)."""
    conn = await asyncpg.connect(f"{PG_SERVER}/postgres", timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def private_database(kind: str, *, keep: bool = False) -> AsyncIterator[str]:
    """A new database named gw_bench_<kind>_<random>; yields its URL, drops it afterwards unless `keep`."""
    name = f"gw_bench_{kind}_{secrets.token_hex(4)}"
    await admin_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        if not keep:
            await admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
