from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from gateway.config.settings import Settings
from gateway.identity.store import open_store
from gateway.identity.store.sql import SqlStore
from tests.dbs import REDIS_URL, create_pg_database, drop_pg_database, redis_prefix
from tests.procs import MASTER_KEY


@dataclass
class Stores:
    settings: Settings
    store: SqlStore
    redis: Redis
    postgres: bool


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Settings for a fresh database of each kind (the embedded SQLite file, or a private Postgres one)."""
    tmp: Path = tmp_path_factory.mktemp(f"privacy-{request.param}")
    settings: dict[str, Any] = {"data_dir": str(tmp), "master_key": MASTER_KEY, "redis_url": REDIS_URL,
                                "redis_prefix": redis_prefix()}
    dsn = None
    if request.param == "postgres":
        dsn = create_pg_database()
        settings["database_url"] = dsn
    yield settings
    if dsn is not None:
        drop_pg_database(dsn)


@pytest.fixture
async def stores(database: dict[str, Any]) -> AsyncIterator[Stores]:
    settings = Settings(**database)
    store = await open_store(settings)
    redis = Redis.from_url(REDIS_URL)
    try:
        yield Stores(settings, store, redis, "database_url" in database)
    finally:
        await store.close()
        prefix = settings.redis_prefix
        async for key in redis.scan_iter(match=f"{prefix}:*"):
            await redis.delete(key)
        await redis.aclose()
