"""Postgres goes away under a running gateway (a private server the test stops and starts).

Requests keep succeeding while it is down; their rows wait in the spill file and reach the
database once it is back, each exactly once. A gateway stopped while the database is down
leaves its rows on disk, and the next gateway writes them.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.accounting.ledger import SPILL_DIR
from gateway.accounting.ledger.row import LedgerRow
from tests.accounting.ledger.conftest import ledger_models
from tests.accounting.ledger.helpers import PrivatePostgres, fetch, migrate, wait_for, wait_rows
from tests.procs import MASTER_KEY, FakeUpstream, Gateway

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    migrate(pg.dsn)
    yield pg
    pg.close()


def settings(pg: PrivatePostgres, data_dir: Path) -> dict[str, Any]:
    return {"database_url": pg.dsn, "data_dir": str(data_dir), "ledger_flush_s": 0.05,
            "ledger_retry_max_s": 0.5, "ledger_write_timeout_s": 3, "ledger_shutdown_s": 3}  # fmt: skip


def send(client: openai.OpenAI, count: int, stream: bool = False) -> list[str]:
    ids = []
    for _ in range(count):
        request_id = "req_fault_" + uuid.uuid4().hex
        reply = client.chat.completions.create(
            model="priced", messages=[{"role": "user", "content": "still there"}], stream=stream,
            extra_headers={"x-request-id": request_id},
        )
        if stream:
            list(reply)  # type: ignore[call-overload]
        ids.append(request_id)
    return ids


def status(gw: Gateway) -> dict[str, Any]:
    return httpx.get(gw.base + "/admin/api/ledger/status", headers=AUTH).json()


def spilled_ids(spill_dir: Path) -> list[str]:
    ids = []
    for path in sorted(spill_dir.glob("*")):
        ids += [LedgerRow.from_json(line).request_id for line in path.read_bytes().splitlines() if line.strip()]
    return ids


def test_rows_survive_a_database_outage(private_pg: PrivatePostgres, upstream: FakeUpstream, tmp_path: Path) -> None:
    gw = Gateway(tmp_path, ledger_models(upstream), settings=settings(private_pg, tmp_path / "data"))
    try:
        client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
        before = send(client, 10) + send(client, 10, stream=True)
        wait_rows(private_pg.dsn, before)

        private_pg.stop()
        during = send(client, 15) + send(client, 15, stream=True)  # the clients notice nothing
        wait_for(lambda: status(gw)["spilled"] >= len(during), "the rows to spill")
        assert set(during) <= set(spilled_ids(tmp_path / "data" / SPILL_DIR))

        private_pg.start()
        after = send(client, 10)
        rows = wait_rows(private_pg.dsn, before + during + after)  # and no request has two
        assert all(row["status"] == 200 and row["completion_tokens"] == 16 for row in rows.values())
        wait_for(lambda: status(gw)["replayed"] >= len(during), "the replay")
        final = status(gw)
        assert (final["lost"], final["rejected"]) == (0, 0)
        [rollup] = fetch(private_pg.dsn, "SELECT sum(requests) AS n FROM ledger_daily WHERE model = 'priced'")
        [raw] = fetch(private_pg.dsn, "SELECT count(*) AS n FROM ledger_requests WHERE requested_model = 'priced'")
        assert rollup["n"] == raw["n"] == len(before + during + after)
        wait_for(lambda: not any((tmp_path / "data" / SPILL_DIR).glob("*")), "the spill files to go")
    finally:
        if not (private_pg.data / "postmaster.pid").exists():
            private_pg.start()
        gw.close()


def test_stopped_while_the_database_is_down(
    private_pg: PrivatePostgres, upstream: FakeUpstream, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first = Gateway(tmp_path, ledger_models(upstream), settings=settings(private_pg, data))
    try:
        client = openai.OpenAI(base_url=first.url, api_key=MASTER_KEY, max_retries=0)
        wait_rows(private_pg.dsn, send(client, 1))
        private_pg.stop()
        ids = send(client, 8)
    finally:
        # SIGTERM: the queue cannot reach the database, so it goes to disk before the process exits.
        first.proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once shut down, so the status says SIGTERM.
        assert first.proc.wait(60) in (0, -signal.SIGTERM)
    on_disk = spilled_ids(data / SPILL_DIR)
    assert sorted(on_disk) == sorted(ids)
    assert all(p.suffix == ".ndjson" for p in (data / SPILL_DIR).iterdir())  # sealed, ready for anyone

    private_pg.start()
    second = Gateway(tmp_path, ledger_models(upstream), settings=settings(private_pg, data))
    try:
        rows = wait_rows(private_pg.dsn, ids)
        assert all(row["status"] == 200 for row in rows.values())
    finally:
        second.close()
    assert spilled_ids(data / SPILL_DIR) == []

