"""A fleet on one machine: three gateway replicas of two workers each behind nginx, sharing the
shared Redis (a private key prefix) and the shared PostgreSQL (a private database).

One fleet per module: starting it costs seconds, and the tests use keys of their own, so they do
not meet. The test that kills a replica runs last in its module.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest
import redis

from gateway.accounting.limits.scopes import scope_base
from tests.dbs import REDIS_URL, create_pg_database, drop_pg_database, redis_prefix
from tests.fleet.calls import MODEL, PRICE, AdminApi, Figures
from tests.fleet.lb import Nginx
from tests.procs import FakeUpstream, Gateway, deployment

REPLICAS = 3
WORKERS = 2
# Short, so that a killed replica's parallel slots come back within seconds of the kill.
LEASE_S = 5.0
# The shared Redis is busy with every session's tests, and this machine's scheduling delays under
# load exceed the default 0.25 s: a late answer would be a 503 (closed mode), not a limit.
REDIS_TIMEOUT_S = 1.0


@dataclass
class Fleet:
    upstream: FakeUpstream
    replicas: list[Gateway]
    lb: Nginx
    dsn: str
    prefix: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.lb.port}/v1"

    def admin(self, replica: int = 0) -> AdminApi:
        return AdminApi(self.replicas[replica].base)

    def slots_key(self, key_id: str) -> str:
        return scope_base(self.prefix, "key", key_id) + ":par"

    def client(self, key: str) -> openai.AsyncOpenAI:
        # The SDK's own pool allows 1,000 connections: 200 requests at once all go out at once.
        return openai.AsyncOpenAI(base_url=self.url, api_key=key, max_retries=0, timeout=60)

    async def rows(self, key_id: str) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return list(await conn.fetch(
                "SELECT request_id, status, cost_usd FROM ledger_requests WHERE key_id = $1", key_id))  # fmt: skip
        finally:
            await conn.close()

    async def rows_when(self, key_id: str, done: Any, timeout_s: float = 15.0) -> list[asyncpg.Record]:
        """The key's ledger rows, once `done(rows)` holds (the writers flush every 0.2 s)."""
        deadline = time.monotonic() + timeout_s
        while True:
            rows = await self.rows(key_id)
            if done(rows) or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.2)


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    found = Figures()
    yield found
    stem = os.environ.get("GATEWAY_FLEET_FIGURES")
    if stem and found.notes:
        found.write(Path(stem))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("fleet")
    dsn = create_pg_database()
    prefix = redis_prefix()
    upstream = FakeUpstream()
    replicas: list[Gateway] = []
    lb: Nginx | None = None
    try:
        models = [{"name": MODEL, "deployments": [deployment(upstream, price=PRICE)]}]
        for n in range(REPLICAS):
            settings = {
                "redis_url": REDIS_URL, "redis_prefix": prefix, "database_url": dsn, "database_pool_size": 2,
                "limits_lease_s": LEASE_S, "limits_redis_timeout_s": REDIS_TIMEOUT_S, "log_requests": False,
                "data_dir": str(tmp / f"replica-{n}"),
            }  # fmt: skip
            # Side by side: each replica migrates the shared database under the same lock.
            # Six workers start at once and migrate under one lock: on a loaded 2-core machine that
            # took over 20 s (start_s bounds a failure, not a speed).
            replicas.append(Gateway(tmp, models, settings=settings, workers=WORKERS, wait=False,
                                    log=tmp / f"replica-{n}.log", start_s=60))  # fmt: skip
        for replica in replicas:
            replica.wait_ready()
        lb = Nginx(tmp, [r.port for r in replicas])
        yield Fleet(upstream, replicas, lb, dsn, prefix)
    finally:
        if lb is not None:
            lb.stop()
        for replica in replicas:
            replica.close()
        upstream.close()
        drop_pg_database(dsn)
        _forget(prefix)


def _forget(prefix: str) -> None:
    """Delete the fleet's keys from the shared Redis (never FLUSHDB)."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        for pattern in ("{" + prefix + ":*", prefix + ":*"):
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)
    finally:
        client.close()


def replica_of(response_headers: httpx.Headers, fleet: Fleet) -> int | None:
    """Which replica answered, from the load balancer's header (the last one it tried)."""
    address = response_headers.get("x-fleet-replica", "").split(",")[-1].strip()
    ports = [r.port for r in fleet.replicas]
    port = int(address.rsplit(":", 1)[1]) if ":" in address else None
    return ports.index(port) if port in ports else None
