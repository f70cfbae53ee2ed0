"""The durable mode (issue 17, item 7): a SIGKILL loses no answered request's row.

Without it, rows wait in the worker's memory for the writer's next batch, and a SIGKILL loses
them; with `ledger_durable`, each is fsynced to the local journal before its answer completes,
and the next start replays what the dead worker journaled.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import openai
import pytest

from gateway.accounting.ledger.journal import Journal
from gateway.accounting.ledger.postgres import PostgresSink
from gateway.accounting.ledger.spill import Spill
from gateway.accounting.ledger.writer import Ledger, LedgerOptions
from tests.accounting.ledger.conftest import PRICED
from tests.accounting.ledger.helpers import rows_by_id, wait_rows
from tests.accounting.ledger.test_writer import finished, wait_until
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("durable", [False, True])
def test_sigkill_after_answers(upstream: FakeUpstream, pg_dsn: str, tmp_path: Path, durable: bool) -> None:
    models = [{"name": "priced", "deployments": [deployment(upstream, price=PRICED)]}]
    # A long flush interval: every answered row is still in memory when the kill comes.
    settings = {"database_url": pg_dsn, "ledger_flush_s": 30, "ledger_durable": durable}
    gw = Gateway(tmp_path, models, settings=settings)
    answered: list[str] = []
    try:
        client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
        for i in range(30):
            rid = f"durable-{durable}-{i}"
            if i % 3:
                client.chat.completions.create(model="priced", messages=HI, extra_headers={"x-request-id": rid})
            else:
                for _ in client.chat.completions.create(model="priced", messages=HI, stream=True,
                                                        extra_headers={"x-request-id": rid}):  # fmt: skip
                    pass
            answered.append(rid)
    finally:
        gw.kill()
    if not durable:
        # The finding: every answered request's row was lost with the process.
        assert sum(len(rows) for rows in rows_by_id(pg_dsn, answered).values()) == 0
        return
    again = Gateway(tmp_path, models, settings={**settings, "ledger_flush_s": 0.05})
    try:
        rows = wait_rows(pg_dsn, answered)
    finally:
        again.close()
    assert all(row["status"] == 200 and row["cost_usd"] > 0 for row in rows.values())
    # Replayed, then the journal let go: nothing is left behind to replay twice.
    data = tmp_path / "gateway-data"
    assert list((data / "ledger-journal").glob("*")) == [] and list((data / "ledger-spill").glob("*")) == []


async def test_the_journal_lets_go_of_what_reached_the_database(ledger_dsn: str, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal", segment_bytes=4096)  # a new segment every dozen rows or so
    ledger = Ledger(PostgresSink(ledger_dsn, premake_days=2, retention_days=0), Spill(tmp_path / "spill"),
                    LedgerOptions(batch_size=20, flush_s=0.05), journal=journal)  # fmt: skip
    team = "t-" + uuid.uuid4().hex
    await ledger.start()
    for _ in range(10):
        for _ in range(20):
            ledger.record(finished(team))
        await ledger.committed()  # as a request does before its answer completes
    await wait_until(lambda: ledger.stats.written == 200, "200 rows written")
    for _ in range(3):
        ledger.record(finished(team))
        await ledger.committed()  # a commit also deletes the closed segments already written
    segments = sorted((tmp_path / "journal").glob("*"))
    assert journal.commits >= 10 and len(segments) <= 3, segments  # not one per dozen rows
    await ledger.stop()
    assert sorted((tmp_path / "journal").glob("*")) == []
    assert (ledger.stats.written, ledger.stats.spilled, ledger.stats.lost) == (203, 0, 0)
