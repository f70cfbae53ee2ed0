"""Export and erasure on both databases, with ledger rows spread over many day partitions."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import yaml

from gateway.accounting.ledger.postgres import PostgresSink
from gateway.accounting.ledger.row import EPOCH, LedgerRow
from gateway.accounting.ledger.sqlite import SQLiteSink
from gateway.db.connect import postgres_dsn, sqlite_path
from gateway.db.retention import Retention, sweep
from gateway.dialects.responses.store import ResponseStore
from gateway.plugins.cache.stores import RedisStore
from gateway.privacy.service import build_privacy
from gateway.privacy.subject import Subject
from tests.privacy.conftest import Stores
from tests.privacy.scan import holding
from tests.procs import MASTER_KEY

DAYS = 20


def _rows(user: str, other: str, key: str, today: date) -> list[LedgerRow]:
    rows = []
    for day in range(DAYS):
        ts = datetime.combine(today - timedelta(days=day), datetime.min.time(), UTC) + timedelta(hours=3)
        ts_us = int((ts - EPOCH).total_seconds() * 1_000_000)
        for i, (who, tags) in enumerate([(user, {"user": user, "env": "prod"}), (other, {"env": "prod"}),
                                         (None, {})]):
            rows.append(LedgerRow(ts_us + i, f"req-{secrets.token_hex(6)}", "chat", key_id=key if i == 2 else "k-other",
                                  key_prefix="sk-abcd", team_id="t1", end_user=who, requested_model="m",
                                  provider="openai", status=200, prompt_tokens=10, completion_tokens=5,
                                  cost_usd=Decimal("0.000123"), tags=tags))
    return rows


async def _write(stores: Stores, rows: list[LedgerRow]) -> None:
    dsn = postgres_dsn(stores.settings)
    sink: PostgresSink | SQLiteSink
    if dsn is not None:
        sink = PostgresSink(dsn, premake_days=1, retention_days=0)
    else:
        sink = SQLiteSink(sqlite_path(stores.settings), retention_days=0)
    await sink.open()
    try:
        assert await sink.write(rows) == len(rows)
    finally:
        await sink.close()


async def _seed(stores: Stores, user: str, other: str, key: str) -> None:
    await _write(stores, _rows(user, other, key, datetime.now(UTC).date()))
    responses = ResponseStore(stores.store.db)
    from gateway.core.types import Principal

    now = datetime.now(UTC)
    for who, field in ((user, "user"), (user, "safety_identifier"), (other, "user")):
        principal = Principal(key_id="k-other", key_prefix="sk-abcd", team_id="t1")
        await responses.put(principal, {"id": f"resp_{secrets.token_hex(8)}", "model": "m", field: who,
                                        "output": [{"type": "message", "content": f"hello {who}"}]},
                            [{"role": "user", "content": f"I am {who}"}], now)
    cache = RedisStore(stores.redis, stores.settings.redis_prefix)
    for who, entry in ((user, "a1"), (user, "a2"), (other, "b1")):
        await cache.set(entry + secrets.token_hex(4), orjson.dumps({"body": {"text": f"for {who}"}}), 60)
    # Attribution as the exact cache makes it: one set per owner.
    keys = [k async for k in stores.redis.scan_iter(match=f"{stores.settings.redis_prefix}:cache:v1:a*")]
    for name in keys:
        await cache.attribute(name.decode().rsplit(":", 1)[1], [f"user:{user}", f"key:{key}"], 60)
    keys = [k async for k in stores.redis.scan_iter(match=f"{stores.settings.redis_prefix}:cache:v1:b*")]
    for name in keys:
        await cache.attribute(name.decode().rsplit(":", 1)[1], [f"user:{other}"], 60)


async def _export(stores: Stores, subject: Subject) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = [orjson.loads(line) async for line in build_privacy(stores.settings, stores.store.db).export(subject, "t")]
    return lines[0], lines[1:]


async def _everywhere(stores: Stores, needle: str) -> list[str]:
    """Every table (every partition) and every Redis key and value under the prefix that holds `needle`."""
    dsn = postgres_dsn(stores.settings)
    return await holding(needle, dsn=dsn, sqlite=sqlite_path(stores.settings) if dsn is None else None,
                         redis=stores.redis, prefix=stores.settings.redis_prefix)


async def _totals(stores: Stores) -> tuple[Decimal, Decimal, int]:
    async with stores.store.db.reader() as tx:
        rows = await tx.fetch("SELECT cost_usd FROM ledger_requests")
        daily = await tx.fetch("SELECT cost_usd, requests FROM ledger_daily")
    return (sum((Decimal(str(r["cost_usd"])) for r in rows), Decimal(0)),
            sum((Decimal(str(r["cost_usd"])) for r in daily), Decimal(0)), sum(r["requests"] for r in daily))


async def test_an_erased_end_user_is_nowhere_and_the_rollups_still_add_up(stores: Stores) -> None:
    user, other = f"alice-{secrets.token_hex(4)}@example.com", f"bob-{secrets.token_hex(4)}"
    key = "k-" + secrets.token_hex(4)
    await _seed(stores, user, other, key)

    manifest, records = await _export(stores, Subject("user", user))
    assert manifest["object"] == "privacy.manifest" and manifest["subject"] == {"kind": "user", "id": user}
    assert manifest["counts"] == {"ledger": DAYS, "responses": 2, "cache": 2}
    ledger = [r["record"] for r in records if r["source"] == "ledger"]
    assert len(ledger) == DAYS and all(r["end_user"] == user for r in ledger)
    assert len({r["ts"][:10] for r in ledger}) == DAYS  # one per day partition
    assert ledger[0]["cost_usd"] == "0.000123" and ledger[0]["fallback"] is False and ledger[0]["tags"]["user"] == user
    assert {r["source"] for r in records} == {"ledger", "responses", "cache"}
    assert len(records) == DAYS + 4

    before = await _totals(stores)
    assert before[0] == before[1]
    assert await _everywhere(stores, user)
    if stores.postgres:  # one row a day, each in its own day partition
        async with stores.store.db.reader() as tx:
            held = await tx.fetch("SELECT DISTINCT tableoid::regclass::text AS p FROM ledger_requests "
                                  "WHERE end_user = $1", user)
        assert len(held) == DAYS and all(r["p"].startswith("ledger_requests_") for r in held), held

    erasure = await build_privacy(stores.settings, stores.store.db).erase(Subject("user", user), "tester")
    assert erasure.counts == {"ledger": DAYS, "ledger_tags": DAYS, "responses": 2, "cache": 2}

    assert await _everywhere(stores, user) == []
    assert await _totals(stores) == before  # anonymised, not deleted: spend still counted, rollup equal
    manifest, records = await _export(stores, Subject("user", user))
    assert manifest["counts"] == {"ledger": 0, "responses": 0, "cache": 0} and records == []
    # The other end user is untouched, and tags other than the erased id stayed.
    manifest, records = await _export(stores, Subject("user", other))
    assert manifest["counts"] == {"ledger": DAYS, "responses": 1, "cache": 1}
    async with stores.store.db.reader() as tx:
        audit = await tx.fetch("SELECT * FROM audit_log WHERE action LIKE 'privacy.%' ORDER BY id")
        kept_tags = await tx.fetch("SELECT tags FROM ledger_requests WHERE request_id IN "
                                   "(SELECT request_id FROM ledger_requests WHERE end_user IS NULL) LIMIT 1")
    assert kept_tags
    erased_audit = [a for a in audit if a["action"] == "privacy.erase"]
    assert erased_audit[-1]["target_id"] == erasure.subject_ref == Subject("user", user).reference(
        stores.settings.master_key.get_secret_value().encode())  # type: ignore[union-attr]
    details = erased_audit[-1]["details"]
    details = orjson.loads(details) if isinstance(details, str) else details
    assert details["counts"]["ledger"] == DAYS


async def test_an_erased_key_gets_a_new_id_in_rows_and_rollup(stores: Stores) -> None:
    user, other, key = f"carol-{secrets.token_hex(4)}", f"dan-{secrets.token_hex(4)}", "k-" + secrets.token_hex(4)
    await _seed(stores, user, other, key)
    manifest, _ = await _export(stores, Subject("key", key))
    assert manifest["counts"]["ledger"] == DAYS and manifest["counts"]["ledger_daily"] == DAYS
    assert manifest["counts"]["cache"] == 2
    before = await _totals(stores)

    erasure = await build_privacy(stores.settings, stores.store.db).erase(Subject("key", key), "tester")
    assert erasure.counts["ledger"] == DAYS and erasure.counts["ledger_daily"] == DAYS
    assert erasure.counts["cache"] == 2
    assert erasure.replacement_key_id is not None and erasure.replacement_key_id.startswith("erased-")
    assert await _everywhere(stores, key) == []
    assert await _totals(stores) == before
    async with stores.store.db.reader() as tx:
        moved = await tx.fetch("SELECT count(*) AS n FROM ledger_daily WHERE key_id = $1", erasure.replacement_key_id)
    assert moved[0]["n"] == DAYS


async def test_retention_sweeps_the_audit_log_and_old_rollup_days(stores: Stores) -> None:
    await _write(stores, _rows("x", "y", "k-ret", datetime.now(UTC).date()))
    today = datetime.now(UTC).date()
    old = datetime.now(UTC) - timedelta(days=400)
    async with stores.store.db.transaction() as tx:
        await tx.execute("INSERT INTO audit_log (at, actor, action, target_type, target_id, details) "
                         "VALUES ($1, 'test', 'old', 'x', 'y', $2)", old, {})
    async with stores.store.db.reader() as tx:
        days_before = len(await tx.fetch("SELECT DISTINCT day FROM ledger_daily"))
    swept = await sweep(stores.store.db, Retention(audit_days=365, ledger_daily_days=10), today,
                        postgres=stores.postgres)
    assert swept["audit_log"] >= 1
    assert swept["ledger_daily"] > 0
    async with stores.store.db.reader() as tx:
        days_after = {str(r["day"]) for r in await tx.fetch("SELECT DISTINCT day FROM ledger_daily")}
        olds = await tx.fetch("SELECT id FROM audit_log WHERE action = 'old'")
    assert olds == []
    # As the ledger's own retention: today and the 10 days before it are kept.
    assert days_before >= DAYS and len(days_after) == 11
    assert min(days_after) == (today - timedelta(days=10)).isoformat()


async def test_db_maintain_applies_the_audit_log_and_rollup_retention(stores: Stores, tmp_path: Path) -> None:
    await _write(stores, _rows("x", "y", "k-maintain", datetime.now(UTC).date()))
    today = datetime.now(UTC).date()
    async with stores.store.db.transaction() as tx:
        await tx.execute("INSERT INTO audit_log (at, actor, action, target_type, target_id, details) "
                         "VALUES ($1, 'test', 'ancient', 'x', 'y', $2)", datetime.now(UTC) - timedelta(days=40), {})
    config = tmp_path / "gateway.yaml"
    settings = {"data_dir": stores.settings.data_dir, "audit_retention_days": 30, "ledger_daily_retention_days": 5}
    if (dsn := postgres_dsn(stores.settings)) is not None:
        settings["database_url"] = dsn
    config.write_text(yaml.safe_dump({"settings": settings, "models": []}))
    # In a thread: the command opens the same database, and this test's loop must stay free meanwhile.
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "gateway", "db", "maintain", "--config", str(config)],
        env={"GATEWAY_MASTER_KEY": MASTER_KEY, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "rows of audit_log past its retention" in done.stdout and "rows of ledger_daily" in done.stdout
    async with stores.store.db.reader() as tx:
        days = {str(r["day"]) for r in await tx.fetch("SELECT DISTINCT day FROM ledger_daily")}
        ancient = await tx.fetch("SELECT id FROM audit_log WHERE action = 'ancient'")
    assert ancient == [] and min(days) == (today - timedelta(days=5)).isoformat()
