"""The writer in-process against a real Postgres: batching, spilling, replaying exactly once, shutdown."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from time import perf_counter

import asyncpg
import pytest

from gateway.accounting.ledger.postgres import PostgresSink
from gateway.accounting.ledger.row import LedgerRow
from gateway.accounting.ledger.spill import Spill
from gateway.accounting.ledger.writer import Ledger, LedgerOptions
from gateway.config.file import Deployment
from gateway.core.types import Endpoint, Usage
from gateway.pipeline.record import RequestRecord
from tests.procs import free_port

DEPLOYMENT = Deployment(provider="openai", base_url="http://127.0.0.1:1/v1", model="m-up", id="writer/0")


def finished(team: str) -> RequestRecord:
    started = perf_counter()
    now = perf_counter()
    return RequestRecord(
        "req_w_" + uuid.uuid4().hex, Endpoint.CHAT, Endpoint.CHAT.value, started, finished=now, upstream_started=now,
        first_byte_at=now, key_id="k-writer", key_prefix="sk-gw-writer", team_id=team, model="writer-model",
        deployment=DEPLOYMENT, attempts=1, status=200, usage=Usage(prompt_tokens=3, completion_tokens=5),
        cost_usd=Decimal("0.000001"),
    )


async def wait_until(check: object, what: str) -> None:
    for _ in range(600):
        if callable(check) and check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
async def conn(ledger_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(ledger_dsn)
    yield connection
    await connection.close()


def listing(directory: Path, pattern: str = "*") -> list[Path]:
    return sorted(directory.glob(pattern))


def read(path: Path) -> bytes:
    return path.read_bytes()


def sink(dsn: str) -> PostgresSink:
    return PostgresSink(dsn, premake_days=2, retention_days=0)


async def count(conn: asyncpg.Connection, team: str) -> tuple[int, int]:
    rows = await conn.fetchval("SELECT count(*) FROM ledger_requests WHERE team_id = $1", team)
    distinct = await conn.fetchval("SELECT count(DISTINCT request_id) FROM ledger_requests WHERE team_id = $1", team)
    return rows, distinct


async def rollup_requests(conn: asyncpg.Connection, team: str) -> int:
    return int(await conn.fetchval("SELECT coalesce(sum(requests), 0) FROM ledger_daily WHERE team_id = $1", team))


async def test_batches_reach_the_database(ledger_dsn: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    team = "t-" + uuid.uuid4().hex
    ledger = Ledger(sink(ledger_dsn), Spill(tmp_path), LedgerOptions(batch_size=50, flush_s=0.05))
    await ledger.start()
    for _ in range(120):
        ledger.record(finished(team))
    await wait_until(lambda: ledger.stats.written == 120, "120 rows written")
    await ledger.stop()
    assert await count(conn, team) == (120, 120)
    assert await rollup_requests(conn, team) == 120
    assert (ledger.stats.spilled, ledger.stats.lost) == (0, 0)
    assert listing(tmp_path) == []


async def test_full_queue_spills_and_everything_lands_once(
    ledger_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    team = "t-" + uuid.uuid4().hex
    ledger = Ledger(sink(ledger_dsn), Spill(tmp_path), LedgerOptions(queue_size=10, batch_size=1000, flush_s=0.05))
    for _ in range(30):
        ledger.record(finished(team))  # the writer is not running yet: the queue overflows
    assert ledger.stats.spilled == 20 and len(listing(tmp_path, "*.active")) == 1
    await ledger.start()
    await wait_until(lambda: ledger.stats.written + ledger.stats.replayed == 30, "30 rows in")
    await ledger.stop()
    assert await count(conn, team) == (30, 30)
    assert await rollup_requests(conn, team) == 30
    assert listing(tmp_path) == []


async def test_replaying_rows_already_written_adds_nothing(
    ledger_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    team = "t-" + uuid.uuid4().hex
    rows = [LedgerRow.from_record(finished(team)) for _ in range(25)]
    direct = sink(ledger_dsn)
    await direct.open()
    assert await direct.write(rows[:20]) == 20
    await direct.close()
    before = await conn.fetchrow(
        "SELECT sum(requests) AS r, sum(cost_usd) AS c FROM ledger_daily WHERE team_id = $1", team)
    # As after a commit whose answer was lost: the same rows (and 5 new ones) come back from the spill.
    spill = Spill(tmp_path)
    spill.append(rows)
    spill.seal()
    ledger = Ledger(sink(ledger_dsn), spill, LedgerOptions(flush_s=0.05))
    await ledger.start()
    await wait_until(lambda: ledger.stats.replayed == 5, "the replay")
    await ledger.stop()
    assert (ledger.stats.replayed, ledger.stats.duplicates) == (5, 20)
    assert await count(conn, team) == (25, 25)
    after = await conn.fetchrow(
        "SELECT sum(requests) AS r, sum(cost_usd) AS c FROM ledger_daily WHERE team_id = $1", team)
    assert (after["r"], after["c"]) == (before["r"] + 5, before["c"] + 5 * Decimal("0.000001"))
    # The rollup without keys, written on both paths (fresh, then the replay's), says the same.
    teams = await conn.fetchrow(
        "SELECT sum(requests) AS r, sum(cost_usd) AS c FROM ledger_daily_teams WHERE team_id = $1", team)
    assert (teams["r"], teams["c"]) == (after["r"], after["c"])


async def test_database_down_then_back(ledger_dsn: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    team = "t-" + uuid.uuid4().hex
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    down = Ledger(sink(nowhere), Spill(tmp_path), LedgerOptions(flush_s=0.05, retry_max_s=0.2, shutdown_s=2))
    await down.start()
    for _ in range(40):
        down.record(finished(team))
    await wait_until(lambda: down.stats.spilled == 40, "40 rows spilled")
    await down.stop()
    assert down.stats.written == 0 and down.stats.write_failures >= 1
    assert [p.suffix for p in listing(tmp_path)] == [".ndjson"]  # sealed at shutdown, for whoever comes next
    assert await count(conn, team) == (0, 0)
    # A later process (or this one once the database answers) replays it.
    back = Ledger(sink(ledger_dsn), Spill(tmp_path), LedgerOptions(flush_s=0.05))
    await back.start()
    await wait_until(lambda: back.stats.replayed == 40, "the replay")
    await back.stop()
    assert await count(conn, team) == (40, 40)
    assert await rollup_requests(conn, team) == 40
    assert listing(tmp_path) == []


async def test_shutdown_flushes_the_queue_and_late_rows_go_to_disk(
    ledger_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    team = "t-" + uuid.uuid4().hex
    # A flush interval longer than the test: only shutdown can have written these.
    ledger = Ledger(sink(ledger_dsn), Spill(tmp_path), LedgerOptions(flush_s=3600, batch_size=10_000))
    await ledger.start()
    for _ in range(15):
        ledger.record(finished(team))
    await ledger.stop()
    assert await count(conn, team) == (15, 15)
    late = finished(team)
    ledger.record(late)  # e.g. a request cancelled after the lifespan ended
    [segment] = listing(tmp_path)
    assert LedgerRow.from_json(read(segment)).request_id == late.request_id


class CountedSink(PostgresSink):
    """The real sink, counting its transactions."""

    writes = 0

    async def write(self, rows: Sequence[LedgerRow], *, replay: bool = False) -> int:
        self.writes += 1
        return await super().write(rows, replay=replay)


async def test_rows_that_come_while_a_batch_is_written_wait_for_the_next_tick(
    ledger_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    """A steady trickle of rows (one per event-loop turn, as requests at concurrency 1 come) is
    written once per flush tick, not one transaction per row as fast as the database answers."""
    team = "t-" + uuid.uuid4().hex
    counted = CountedSink(ledger_dsn, premake_days=2, retention_days=0)
    ledger = Ledger(counted, Spill(tmp_path), LedgerOptions(batch_size=10_000, flush_s=0.25))
    await ledger.start()
    loop = asyncio.get_running_loop()
    ends = loop.time() + 1.0
    recorded = 0
    while loop.time() < ends:
        ledger.record(finished(team))
        recorded += 1
        await asyncio.sleep(0.001)
    await wait_until(lambda: ledger.stats.written == recorded, f"{recorded} rows written")
    await ledger.stop()
    assert await count(conn, team) == (recorded, recorded)
    # A second of rows at 0.25 s ticks: four or five batches (and the first may start early).
    # Draining whatever came during each write instead took one transaction per few rows.
    assert recorded > 200
    assert counted.writes <= 7, f"{counted.writes} transactions for {recorded} rows"
