"""Where an identifier still is: every table (every partition) of either database, and every Redis
key, string, set member and hash field under a prefix."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
from redis.asyncio import Redis


async def holding(needle: str, *, dsn: str | None, sqlite: Path | None, redis: Redis | None = None,
                  prefix: str = "") -> list[str]:
    found: list[str] = []
    if dsn is not None:
        conn = await asyncpg.connect(dsn)
        try:
            tables = [r["relname"] for r in await conn.fetch(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r'")]
            assert any(t.startswith("ledger_requests_") for t in tables)
            for table in tables:
                hits = await conn.fetchval(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE $1', f"%{needle}%")
                if hits:
                    found.append(f"{table}: {hits}")
        finally:
            await conn.close()
    if sqlite is not None:
        lite = sqlite3.connect(sqlite)
        try:
            tables = [r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            assert "ledger_requests" in tables
            for table in tables:
                hits = sum(needle in repr(row) for row in lite.execute(f'SELECT * FROM "{table}"'))
                if hits:
                    found.append(f"{table}: {hits}")
        finally:
            lite.close()
    if redis is not None:
        wanted = needle.encode()
        async for name in redis.scan_iter(match=f"{prefix}:*"):
            kind = await redis.type(name)
            held: list[bytes] = [name]
            if kind == b"string":
                held.append(await redis.get(name) or b"")
            elif kind == b"set":
                held.extend(await redis.smembers(name))
            elif kind == b"hash":
                for field, value in (await redis.hgetall(name)).items():
                    held += [field, value]
            elif kind == b"zset":
                held.extend(await redis.zrange(name, 0, -1))
            elif kind == b"list":
                held.extend(await redis.lrange(name, 0, -1))
            if any(wanted in item for item in held):
                found.append(f"redis {name!r}")
    return found
