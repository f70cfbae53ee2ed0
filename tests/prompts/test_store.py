"""The template store on both databases under concurrent changes: versions numbered without gaps
or repeats, and a label's moves serialised (each audit entry's `from` is the one before's `to`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path

import orjson
import pytest

from gateway.config.settings import Settings
from gateway.identity.store import open_store
from gateway.identity.store.sql import SqlStore
from gateway.prompts.store import Draft, PromptStore
from tests.dbs import create_pg_database, drop_pg_database
from tests.procs import MASTER_KEY

MOVES = 12


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    settings: dict[str, object] = {"data_dir": str(tmp_path), "master_key": MASTER_KEY}
    dsn = create_pg_database() if request.param == "postgres" else None
    if dsn is not None:
        settings["database_url"] = dsn
    opened = await open_store(Settings(**settings))  # type: ignore[arg-type]
    try:
        yield opened
    finally:
        await opened.close()
        if dsn is not None:
            drop_pg_database(dsn)


def draft(n: int) -> Draft:
    return Draft.of({"messages": [{"role": "user", "content": f"version {n}: {{{{x}}}}"}]})


async def test_concurrent_versions_and_label_moves_are_serialised(store: SqlStore) -> None:
    prompts = PromptStore(store.db)
    template = await prompts.create("concurrent", draft(1), "t")
    added = await asyncio.gather(*(prompts.add_version(template.id, draft(n), f"a{n}") for n in range(2, MOVES + 2)))
    assert sorted(v.version for v in added) == list(range(2, MOVES + 2))

    moved = await asyncio.gather(*(prompts.set_label(template.id, "production", n, f"m{n}")
                                   for n in range(1, MOVES + 1)))
    async with store.db.reader() as tx:
        audit = await tx.fetch("SELECT details FROM audit_log WHERE target_id = $1 AND action = 'prompt.label' "
                               "ORDER BY id", template.id)
    chain = [orjson.loads(a["details"]) if isinstance(a["details"], str) else a["details"] for a in audit]
    assert len(chain) == MOVES and chain[0]["from"] is None
    assert all(later["from"] == earlier["to"] for earlier, later in pairwise(chain))
    assert sorted(m["previous_version"] or 0 for m in moved) == sorted(c["from"] or 0 for c in chain)
    label = (await prompts.get(template.id)).labels["production"]
    assert (label["version"], label["previous_version"]) == (chain[-1]["to"], chain[-1]["from"])


async def test_concurrent_rollbacks_go_back_and_forth(store: SqlStore) -> None:
    prompts = PromptStore(store.db)
    template = await prompts.create("rollbacks", draft(1), "t")
    await prompts.add_version(template.id, draft(2), "t")
    await prompts.set_label(template.id, "production", 1, "t")
    await prompts.set_label(template.id, "production", 2, "t")
    # Each rollback reads where the label was under the lock it moves it under: 2 -> 1 -> 2.
    await asyncio.gather(*(prompts.rollback(template.id, "production", f"r{n}") for n in range(2)))
    label = (await prompts.get(template.id)).labels["production"]
    assert (label["version"], label["previous_version"]) == (2, 1)
