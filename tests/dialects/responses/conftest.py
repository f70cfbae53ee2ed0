from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.dialects.responses.store import ResponseStore
from tests.dbs import create_pg_database, drop_pg_database


@pytest.fixture(scope="module")
def responses_pg_dsn() -> Iterator[str]:
    dsn = create_pg_database()
    yield dsn
    drop_pg_database(dsn)


@pytest.fixture(params=["sqlite", "postgres"])
async def response_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ResponseStore]:
    """The same contract, run against each database."""
    if request.param == "postgres":
        from gateway.identity.store.postgres import PostgresDatabase

        db: object = await PostgresDatabase.open(request.getfixturevalue("responses_pg_dsn"))
    else:
        from gateway.identity.store.sqlite import SqliteDatabase

        db = await SqliteDatabase.open(tmp_path / "gateway.db")
    store = ResponseStore(db)  # type: ignore[arg-type]
    yield store
    await store.db.close()
