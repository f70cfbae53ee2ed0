"""Private databases and Redis prefixes on the shared services, so concurrent test sessions never meet.

Nothing here skips: with PostgreSQL or Redis down, the fixtures that need them fail loudly.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import redis

PG_SERVER = os.environ.get("GATEWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS", "redis://127.0.0.1:6379/0")


def create_pg_database() -> str:
    """A new, empty database on the shared server; returns its URL."""
    name = "gw_" + secrets.token_hex(6)
    _run(_admin(f'CREATE DATABASE "{name}"'))
    return f"{PG_SERVER}/{name}"


def drop_pg_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    assert name.startswith("gw_"), "only ever drop a database this module made"
    _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _run(statement: Coroutine[Any, Any, None]) -> None:
    # On a thread of its own: callers may be sync fixtures or code already inside an event loop.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, statement).result()


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(f"{PG_SERVER}/postgres", timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def redis_prefix() -> str:
    """A fresh key prefix; checks on the way that the shared Redis answers."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    finally:
        client.close()
    return "t" + secrets.token_hex(6)
