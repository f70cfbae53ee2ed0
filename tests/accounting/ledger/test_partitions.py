"""Day partitions: made ahead, made on demand for late rows, dropped past retention; and the CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import yaml

from gateway.accounting.ledger.partitions import partition_name
from gateway.accounting.ledger.postgres import PostgresSink
from gateway.accounting.ledger.row import EPOCH, LedgerRow
from tests.accounting.ledger.helpers import migrate
from tests.dbs import create_pg_database, drop_pg_database
from tests.procs import MASTER_KEY

DAY = date(2030, 6, 15)


@pytest.fixture
def fresh_dsn() -> Iterator[str]:
    # Its own database: this test moves "today" around, which would drop other tests' partitions.
    dsn = create_pg_database()
    migrate(dsn)
    yield dsn
    drop_pg_database(dsn)


def row_on(day: date, n: int) -> LedgerRow:
    ts = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return LedgerRow(ts_us=(ts - EPOCH) // timedelta(microseconds=1) + n, request_id=f"req_{day}_{n}",
                     endpoint="chat/completions", team_id="t", requested_model="m", status=200)  # fmt: skip


async def partitions(conn: asyncpg.Connection) -> list[str]:
    records = await conn.fetch("""
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'ledger_requests'::regclass ORDER BY 1""")
    return [r["relname"] for r in records]


async def test_partitions_ahead_on_demand_and_past_retention(fresh_dsn: str) -> None:
    sink = PostgresSink(fresh_dsn, premake_days=2, retention_days=3)
    await sink.open()
    conn = await asyncpg.connect(fresh_dsn)
    try:
        report = await sink.maintain(DAY)
        ahead = [partition_name(DAY + timedelta(days=d)) for d in (-1, 0, 1, 2)]
        assert report.created == ahead and report.dropped == []
        assert await partitions(conn) == ahead
        assert (await sink.maintain(DAY)).created == []  # idempotent

        # A row from ten days back (a late replay) gets its partition when it is written.
        old_day = DAY - timedelta(days=10)
        assert await sink.write([row_on(old_day, i) for i in range(3)] + [row_on(DAY, i) for i in range(2)]) == 5
        assert partition_name(old_day) in await partitions(conn)
        # Every partition carries the parent's indexes: b-trees on ts (the newest rows first) and
        # where dashboards filter.
        indexes = await conn.fetch("SELECT indexdef FROM pg_indexes WHERE tablename = $1", partition_name(DAY))
        definitions = " ".join(r["indexdef"] for r in indexes)
        assert "USING btree (ts)" in definitions
        for column in ("team_id", "key_id", "requested_model", "request_id"):
            assert f"({column}, ts)" in definitions

        report = await sink.maintain(DAY)
        assert report.dropped == [partition_name(old_day)]
        assert await partitions(conn) == ahead
        assert await conn.fetchval("SELECT count(*) FROM ledger_requests") == 2
        # The rollup outlives the raw rows: dashboards keep their history.
        assert await conn.fetchval("SELECT requests FROM ledger_daily WHERE day = $1", old_day) == 3
    finally:
        await conn.close()
        await sink.close()


def test_db_maintain_command(fresh_dsn: str, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "settings": {"database_url": fresh_dsn, "ledger_premake_days": 2, "data_dir": str(tmp_path)},
        "models": [],
    }))  # fmt: skip
    env = {"GATEWAY_MASTER_KEY": MASTER_KEY, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "gateway", "db", "maintain", "--config", str(config)]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert first.returncode == 0, first.stderr
    today = datetime.now(UTC).date()
    assert f"created {partition_name(today)}" in first.stdout
    assert f"created {partition_name(today + timedelta(days=2))}" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert (second.returncode, second.stdout.strip()) == (0, "ledger: nothing to do")
    # A database that is not there: a one-line error and a failing status, no traceback.
    config.write_text(yaml.safe_dump({"settings": {"database_url": fresh_dsn + "_missing"}, "models": []}))
    missing = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert fresh_dsn not in missing.stderr
