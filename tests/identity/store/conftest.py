from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.identity.store.sql import SqlStore
from tests.dbs import create_pg_database, drop_pg_database


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    dsn = create_pg_database()
    yield dsn
    drop_pg_database(dsn)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SqlStore]:
    """The same contract, run against each implementation."""
    if request.param == "postgres":
        from gateway.identity.store.postgres import PostgresDatabase

        db: object = await PostgresDatabase.open(request.getfixturevalue("pg_dsn"))
    else:
        from gateway.identity.store.sqlite import SqliteDatabase

        db = await SqliteDatabase.open(Path(tmp_path_factory.mktemp("sqlite")) / "gateway.db")
    store = SqlStore(db)  # type: ignore[arg-type]
    yield store
    await store.close()
