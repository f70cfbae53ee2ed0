"""The embedded default: with no database configured, the same rows land in SQLite under data_dir."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.accounting.ledger.row import COLUMNS
from gateway.db.connect import SQLITE_FILE
from tests.accounting.ledger.conftest import PRICED, ledger_models
from tests.accounting.ledger.helpers import cost, fetch, wait_for
from tests.procs import MASTER_KEY, FakeUpstream, Gateway


@pytest.fixture(scope="module")
def sqlite_gateway(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Path]]:
    """A gateway with no database configured, and the SQLite file it keeps under its data_dir."""
    tmp = tmp_path_factory.mktemp("ledger-sqlite")
    gw = Gateway(tmp, ledger_models(upstream), settings={"data_dir": str(tmp / "data"), "ledger_flush_s": 0.05})
    yield gw, tmp / "data" / SQLITE_FILE
    gw.close()


def sqlite_rows(path: Path, request_ids: list[str]) -> dict[str, dict[str, Any]] | None:
    if not path.exists():
        return None
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        marks = ",".join("?" * len(request_ids))
        found = conn.execute(f"SELECT * FROM ledger_requests WHERE request_id IN ({marks})", request_ids).fetchall()
    except sqlite3.OperationalError:
        return None  # not migrated yet
    finally:
        conn.close()
    rows = {r["request_id"]: dict(r) for r in found}
    return rows if len(found) == len(request_ids) == len(rows) else None


def test_rows_land_in_sqlite(sqlite_gateway: tuple[Gateway, Path]) -> None:
    gw, path = sqlite_gateway
    client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    unary, stream, refused = (f"req_sqlite_{uuid.uuid4().hex}" for _ in range(3))
    client.chat.completions.create(model="priced", messages=[{"role": "user", "content": "one two three"}],
                                   extra_headers={"x-request-id": unary, "x-gateway-tags": "k=v"})  # fmt: skip
    list(client.chat.completions.create(model="unpriced", messages=[{"role": "user", "content": "a b"}], stream=True,
                                        extra_headers={"x-request-id": stream}))  # fmt: skip
    assert httpx.post(gw.url + "/chat/completions", json={"model": "priced", "messages": []},
                      headers={"x-request-id": refused}).status_code == 401  # fmt: skip
    rows = wait_for(lambda: sqlite_rows(path, [unary, stream, refused]), "rows in SQLite")
    assert (rows[unary]["prompt_tokens"], rows[unary]["completion_tokens"]) == (3, 16)
    assert Decimal(rows[unary]["cost_usd"]) == cost(PRICED, 3, 16)
    assert orjson.loads(rows[unary]["tags"]) == {"k": "v"}
    assert (rows[stream]["stream"], rows[stream]["cost_usd"], rows[stream]["completion_tokens"]) == (1, None, 16)
    assert (rows[refused]["status"], rows[refused]["key_id"], rows[refused]["cost_usd"]) == (401, None, "0")
    conn = sqlite3.connect(path)
    try:
        [(requests, cost_text)] = conn.execute(
            "SELECT requests, cost_usd FROM ledger_daily WHERE model = 'priced' AND key_id = 'master'").fetchall()
    finally:
        conn.close()
    assert requests >= 1 and Decimal(cost_text) >= cost(PRICED, 3, 16)


def test_sqlite_and_postgres_tables_have_the_same_columns(
    sqlite_gateway: tuple[Gateway, Path], ledger_dsn: str
) -> None:
    _, path = sqlite_gateway
    wait_for(lambda: path.exists(), "the SQLite file")
    conn = sqlite3.connect(path)
    try:
        for table in ("ledger_requests", "ledger_daily"):
            lite = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            pg = [r["column_name"] for r in fetch(ledger_dsn, """
                SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position
            """, table)]  # fmt: skip
            assert lite == pg, table
            if table == "ledger_requests":
                assert tuple(lite) == COLUMNS
    finally:
        conn.close()
