"""Text a client chooses never costs anyone else their ledger rows (issue 17, item 1).

A NUL in `user`, in an unknown model's name or in a wildcard model's name used to make
PostgreSQL refuse the COPY, and the whole batch, other tenants' rows too, was set aside.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.accounting.ledger.postgres import PostgresSink
from gateway.accounting.ledger.row import MAX_TEXT_CHARS, LedgerRow
from gateway.accounting.ledger.spill import Spill
from gateway.accounting.ledger.writer import Ledger, LedgerOptions
from tests.accounting.ledger.conftest import PRICED
from tests.accounting.ledger.helpers import fetch, wait_rows
from tests.accounting.ledger.test_writer import finished, wait_until
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
NORMAL_PER_KEY = 40


@pytest.fixture(scope="module")
def hostile_gateway(
    upstream: FakeUpstream, ledger_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("hostile-gw")
    models = [
        {"name": "priced", "deployments": [deployment(upstream, price=PRICED)]},
        {"name": "wild/*", "deployments": [deployment(upstream, model="*", price=PRICED)]},
    ]
    # A long flush: hostile and normal rows share the same batches, as they would under load.
    settings = {"database_url": ledger_dsn, "ledger_flush_s": 0.5, "ledger_premake_days": 3}
    gw = Gateway(tmp, models, settings=settings)
    yield gw
    gw.close()


def new_key(base: str, team: str) -> str:
    made = httpx.post(f"{base}/admin/api/teams", json={"name": team}, headers=ADMIN, timeout=10)
    assert made.status_code == 201, made.text
    key = httpx.post(f"{base}/admin/api/keys", json={"name": team, "team_id": made.json()["id"]},
                     headers=ADMIN, timeout=10)  # fmt: skip
    assert key.status_code == 201, key.text
    return str(key.json()["key"])


def test_hostile_text_among_other_keys_traffic_costs_no_row(hostile_gateway: Gateway, ledger_dsn: str) -> None:
    run = uuid.uuid4().hex[:8]
    normal = {team: new_key(hostile_gateway.base, team) for team in (f"a-{run}", f"b-{run}")}
    attacker = new_key(hostile_gateway.base, f"x-{run}")
    hello = [{"role": "user", "content": "hi"}]
    hostile = [
        {"model": "priced", "messages": hello, "user": "a\u0000b"},
        {"model": "no-such\u0000model", "messages": hello},
        {"model": "wild/up\u0000stream", "messages": hello},
        {"model": "wild/" + "w" * 5000, "messages": hello},  # past what a btree index entry may hold
        {"model": "n" * 20_000, "messages": hello},
        {"model": "priced", "messages": hello, "user": "\u0000" * 300},
    ]

    async def scenario() -> dict[str, Counter[int]]:
        statuses: dict[str, Counter[int]] = {"normal": Counter(), "hostile": Counter()}
        async with httpx.AsyncClient(base_url=hostile_gateway.url, timeout=30) as http:
            async def send(kind: str, key: str, body: dict[str, object], rid: str) -> None:
                answer = await http.post("/chat/completions", json=body,
                                         headers={"authorization": f"Bearer {key}", "x-request-id": rid})
                statuses[kind][answer.status_code] += 1

            jobs = []
            for i in range(NORMAL_PER_KEY):
                for team, key in normal.items():
                    jobs.append(send("normal", key, {"model": "priced", "messages": hello, "user": f"u{i}"},
                                     f"ok-{team}-{i}"))
                if i % 6 == 0:
                    for j, body in enumerate(hostile):
                        jobs.append(send("hostile", attacker, body, f"bad-{run}-{i}-{j}"))
            await asyncio.gather(*jobs)
        return statuses

    statuses = asyncio.run(scenario())
    assert statuses["normal"] == Counter({200: 2 * NORMAL_PER_KEY})
    assert set(statuses["hostile"]) <= {200, 404}, statuses
    # Every request has its one row: the normal ones and the hostile ones, made storable.
    ok_ids = [f"ok-{team}-{i}" for team in normal for i in range(NORMAL_PER_KEY)]
    bad_ids = [f"bad-{run}-{i}-{j}" for i in range(0, NORMAL_PER_KEY, 6) for j in range(len(hostile))]
    rows = wait_rows(ledger_dsn, ok_ids + bad_ids)
    assert all(rows[i]["status"] == 200 for i in ok_ids)
    for i in bad_ids:
        for column in ("end_user", "requested_model", "served_model"):
            value = rows[i][column]
            assert value is None or ("\x00" not in value and len(value) <= MAX_TEXT_CHARS), (i, column)
    assert rows[f"bad-{run}-0-0"]["end_user"] == "a\ufffdb"
    # The rollup counts every normal request of each key.
    for team in normal:
        daily = fetch(ledger_dsn, "SELECT sum(requests) AS n FROM ledger_daily d JOIN teams t ON t.id = d.team_id "
                                  "WHERE t.name = $1", team)  # fmt: skip
        assert daily[0]["n"] == NORMAL_PER_KEY, team
    status = httpx.get(hostile_gateway.base + "/admin/api/ledger/status", headers=ADMIN, timeout=10).json()
    assert (status["rejected"], status["lost"]) == (0, 0), status


def set_aside_lines(directory: Path) -> list[bytes]:
    return [line for aside in directory.glob("*.rejected") for line in aside.read_bytes().splitlines()]


async def test_a_refused_batch_sets_aside_only_the_refused_rows(ledger_dsn: str, tmp_path: Path) -> None:
    """Independently of clean rows: rows built without the cleaning (an older version's spill
    file, a bug) are found by splitting the batch; their neighbours are written."""
    team = "t-" + uuid.uuid4().hex
    sink = PostgresSink(ledger_dsn, premake_days=2, retention_days=0)
    ledger = Ledger(sink, Spill(tmp_path), LedgerOptions(batch_size=100, flush_s=0.05))
    bad = {7, 41, 42, 99}
    for i in range(100):
        ledger.record(finished(team))
        if i in bad:
            row = ledger._queue[-1]
            row.end_user = "x\x00y"  # what LedgerRow.from_record no longer builds
    await ledger.start()
    await wait_until(lambda: ledger.stats.written + ledger.stats.rejected == 100, "every row written or set aside")
    await ledger.stop()
    assert (ledger.stats.written, ledger.stats.rejected, ledger.stats.lost) == (96, 4, 0)
    conn = await asyncpg.connect(ledger_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM ledger_requests WHERE team_id = $1", team) == 96
        assert await conn.fetchval("SELECT sum(requests) FROM ledger_daily WHERE team_id = $1", team) == 96
    finally:
        await conn.close()
    kept = [LedgerRow.from_json(line) for line in set_aside_lines(tmp_path)]
    assert len(kept) == 4 and all(row.end_user == "x\x00y" for row in kept)


