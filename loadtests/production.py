"""The gateway as teams deploy it, as benchmark targets: called with a budgeted virtual key.

- `production_target()`: a virtual key on a team, both with rpm, tpm and a budget (the key's daily,
  the team's monthly); limits in Redis (the shared server, under a private key prefix), keys and the
  ledger in PostgreSQL (a private database made for the target and dropped after it), metrics on,
  one JSON log line per request into the server's log file.
- `embedded_keyed_target()`: the embedded default (SQLite, limits in-process, ledger, metrics and
  logs on) called with the same kind of key.

The caps are far above anything a run reaches: checked on every request, never hit. Keys are issued
through the gateway's admin API once it is up, as an operator would.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from loadgen import chat_body
from targets import MASTER_HEADERS, MODEL, Launcher, Running, Stack, start_gateway

PG_SERVER = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PRICE = {"input_per_mtok": "0.15", "output_per_mtok": "0.60"}
# Checked on every request, never reached: a budget that refused mid-run would measure refusals.
CAPS: dict[str, Any] = {"rpm": 1_000_000_000, "tpm": 1_000_000_000_000, "budget_usd": "1000000000"}
KEY_CAPS = {**CAPS, "budget_period": "daily"}
TEAM_CAPS = {**CAPS, "budget_period": "monthly"}
# The recorders an operator runs, said explicitly so a changed default does not change the target.
RECORDING = {"ledger_enabled": True, "metrics_enabled": True, "log_requests": True, "log_level": "info"}
LIMIT_HEADER = "x-ratelimit-limit-requests"


def production_target(tree: Path | None = None) -> Launcher:
    async def launch(stack: Stack) -> Running:
        database = await create_database()
        prefix = "bench" + secrets.token_hex(4)
        env = {"GATEWAY_DATABASE_URL": database, "GATEWAY_REDIS_URL": REDIS_URL, "GATEWAY_REDIS_PREFIX": prefix}
        settings = {**RECORDING, "limits_failure_mode": "closed"}
        try:
            running = await start_gateway(stack, {"settings": settings}, env, tree=tree, price=PRICE,
                                          name="gateway-prod")  # fmt: skip
        except BaseException:
            await drop_database(database)
            await delete_redis_keys(prefix)
            raise
        running.cleanups += [lambda: drop_database(database), lambda: delete_redis_keys(prefix)]
        return await _with_key(running)

    return launch


def embedded_keyed_target(tree: Path | None = None) -> Launcher:
    async def launch(stack: Stack) -> Running:
        running = await start_gateway(stack, {"settings": RECORDING}, tree=tree, price=PRICE, name="gateway-keyed")
        return await _with_key(running)

    return launch


async def _with_key(running: Running) -> Running:
    try:
        running.headers = await issue_key(running.base_url)
    except BaseException:
        await running.close()
        raise
    return running


async def issue_key(
    base_url: str, *, team_caps: Mapping[str, Any] = TEAM_CAPS, key_caps: Mapping[str, Any] = KEY_CAPS
) -> dict[str, str]:
    """A team and a key on it through the admin API; the headers that call with the key, checked
    to be limited (the answer carries the rate-limit headers)."""
    admin_url = base_url.removesuffix("/v1") + "/admin/api"
    async with httpx.AsyncClient(base_url=admin_url, headers=MASTER_HEADERS, timeout=30.0, trust_env=False) as admin:
        team = await admin.post("/teams", json={"name": "bench-" + secrets.token_hex(4), **team_caps})
        team.raise_for_status()
        key = await admin.post("/keys", json={"team_id": team.json()["id"], **key_caps})
        key.raise_for_status()
    headers = {"Authorization": f"Bearer {key.json()['key']}"}
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        answer = await client.post(f"{base_url}/chat/completions", content=chat_body(MODEL, False), headers=headers)
    if answer.status_code != 200 or LIMIT_HEADER not in answer.headers:
        raise RuntimeError(f"the virtual key's first request: {answer.status_code} {answer.text[:200]}")
    return headers


async def create_database() -> str:
    """A new, empty database on the PostgreSQL server; its URL. The gateway migrates it at start."""
    name = "gw_bench_" + secrets.token_hex(6)
    await _pg_admin(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


async def drop_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    if not name.startswith("gw_bench_"):
        raise ValueError(f"refusing to drop {name!r}: not a database this module made")
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _pg_admin(statement: str) -> None:
    conn = await asyncpg.connect(f"{PG_SERVER}/postgres", timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def delete_redis_keys(prefix: str, url: str = REDIS_URL) -> None:
    """Every key under `prefix` (limit counters are hash-tagged `{prefix:...}`); nothing else."""
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_timeout=5)
    try:
        for pattern in ("{" + prefix + ":*", prefix + ":*"):
            async for key in client.scan_iter(match=pattern, count=1000):
                await client.delete(key)
    finally:
        await client.aclose()
