"""Recommendations on synthetic ledgers written by the real sinks, on both stores: each one found
where it should be, with the money computed by hand, and none where the criteria say no."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from gateway.accounting.ledger.postgres import PostgresSink
from gateway.accounting.ledger.row import EPOCH, LedgerRow
from gateway.accounting.ledger.sqlite import SQLiteSink
from gateway.accounting.recommend import Criteria, LiveKey, Recommendation, recommend
from gateway.config.file import Price
from gateway.config.settings import Settings
from gateway.db.connect import postgres_dsn, sqlite_path
from gateway.identity.store import open_store
from gateway.identity.store.sql import SqlStore
from tests.dbs import create_pg_database, drop_pg_database
from tests.procs import MASTER_KEY

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
# USD per million tokens. `dear` is ten times `cheap`; `flaky` and `slow` are cheaper still, but
# one fails too often and the other is too slow to be comparable.
PRICES = {"dear": Price(input_per_mtok=Decimal(10), output_per_mtok=Decimal(30)),
          "cheap": Price(input_per_mtok=Decimal(1), output_per_mtok=Decimal(2)),
          "flaky": Price(input_per_mtok=Decimal("0.5"), output_per_mtok=Decimal(1)),
          "slow": Price(input_per_mtok=Decimal("0.5"), output_per_mtok=Decimal("1.5"))}
# deployment: (requests, errors, mean latency of successes in ms)
TRAFFIC = {"dear": (200, 2, 1000.0), "cheap": (200, 3, 1100.0), "flaky": (200, 30, 1000.0), "slow": (200, 0, 3000.0)}
PROMPT, COMPLETION = 1000, 100
SEEDED: set[str] = set()
DEFAULT = Criteria()


@dataclass
class Ledger:
    store: SqlStore
    postgres: bool


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    values: dict[str, Any] = {"data_dir": str(tmp_path_factory.mktemp(f"rec-{request.param}")),
                              "master_key": MASTER_KEY}
    dsn = None
    if request.param == "postgres":
        dsn = values["database_url"] = create_pg_database()
    yield Settings(**values)
    if dsn is not None:
        drop_pg_database(dsn)


@pytest.fixture
async def ledger(settings: Settings) -> AsyncIterator[Ledger]:
    store = await open_store(settings)
    dsn = postgres_dsn(settings)
    if settings.data_dir not in SEEDED:  # once per database; the loop is the test's, so this fixture is too
        SEEDED.add(settings.data_dir)
        sink: PostgresSink | SQLiteSink = (PostgresSink(dsn, premake_days=1, retention_days=0) if dsn
                                           else SQLiteSink(sqlite_path(settings), retention_days=0))
        await sink.open()
        try:
            rows = deployment_rows() + repeat_rows() + key_rows()
            assert await sink.write(rows) == len(rows)
        finally:
            await sink.close()
    try:
        yield Ledger(store, dsn is not None)
    finally:
        await store.close()


def row(n: int, at: datetime, **fields: Any) -> LedgerRow:
    return LedgerRow(ts_us=(at - EPOCH) // timedelta(microseconds=1), request_id=f"req_{n:05d}",
                     endpoint="chat/completions", **fields)


def charge(price: Price, requests: int) -> Decimal:
    return requests * (PROMPT * price.input_per_mtok + COMPLETION * price.output_per_mtok) / 1_000_000


def deployment_rows() -> list[LedgerRow]:
    rows = []
    for name, (requests, errors, latency) in TRAFFIC.items():
        for i in range(requests):
            failed = i < errors
            rows.append(row(len(rows), NOW - timedelta(days=1, minutes=i),
                            key_id="k_active", requested_model="m", deployment=name, provider="openai",
                            status=502 if failed else 200, error_type="server_error" if failed else None,
                            prompt_tokens=0 if failed else PROMPT, completion_tokens=0 if failed else COMPLETION,
                            cost_usd=Decimal(0) if failed else charge(PRICES[name], 1),
                            latency_ms=50.0 if failed else latency))
    return rows


# Exact repeats: (team, fingerprint, minutes after the start, status, cost, cache hit)
REPEATS = [
    ("t1", "f1", 0, 200, "0.01", False),    # stored
    ("t1", "f1", 10, 200, "0.02", False),   # a hit: within the hour
    ("t2", "f1", 11, 200, "0.04", False),   # another team: the cache scopes by team, so stored, no hit
    ("t1", "f1", 30, 200, "0", True),       # answered by the cache already: not counted
    ("t1", "f1", 120, 200, "0.08", False),  # the entry expired at 60: stored again
    ("t1", "f1", 125, 200, "0.16", False),  # a hit
    ("t1", "f2", 0, 500, "0", False),       # failed: nothing stored
    ("t1", "f2", 1, 200, "0.32", False),    # so not a hit; stored
    ("t1", "f2", 2, 200, "0.64", False),    # a hit
    ("t1", "f3", 5, 200, "1.28", False),    # sent once
]
REPEAT_MONEY = Decimal("0.02") + Decimal("0.16") + Decimal("0.64")


def repeat_rows() -> list[LedgerRow]:
    start = NOW - timedelta(days=2)
    return [row(10_000 + i, start + timedelta(minutes=minutes), team_id=team, key_id="k_active", fingerprint=f * 16,
                status=status, error_type=None if status < 400 else "server_error", cost_usd=Decimal(cost),
                cache_hit=hit, requested_model="r")
            for i, (team, f, minutes, status, cost, hit) in enumerate(REPEATS)]


def key_rows() -> list[LedgerRow]:
    # k_idle spent 60 and 45 days ago, then nothing; k_revoked likewise but is not live; k_recent 10 days ago.
    spend = [("k_idle", 60, "1.50"), ("k_idle", 45, "2.25"), ("k_revoked", 60, "9"), ("k_recent", 10, "3")]
    return [row(20_000 + i, NOW - timedelta(days=days), key_id=key, requested_model="x", cost_usd=Decimal(cost),
                status=200) for i, (key, days, cost) in enumerate(spend)]


LIVE = [LiveKey("k_idle", "old batch job", Decimal(50), "monthly"), LiveKey("k_recent", "", None, None),
        LiveKey("k_active", "", None, None), LiveKey("k_never", "", None, None)]


async def found(ledger: Ledger, criteria: Criteria = DEFAULT) -> dict[str, list[Recommendation]]:
    got = await recommend(ledger.store.db, postgres=ledger.postgres, price_of=lambda m, d: PRICES.get(d) if m == "m"
                          else None, keys=LIVE, criteria=criteria, now=NOW)
    assert [r.money_usd for r in got] == sorted((r.money_usd for r in got), reverse=True)
    by_kind: dict[str, list[Recommendation]] = {}
    for r in got:
        by_kind.setdefault(r.kind, []).append(r)
    return by_kind


async def test_a_cheaper_comparable_deployment_is_recommended_with_the_money_it_saves(ledger: Ledger) -> None:
    (one,) = (await found(ledger))["cheaper_deployment"]
    assert (one.details["from_deployment"]["deployment"], one.details["to_deployment"]["deployment"]) == ("dear",
                                                                                                          "cheap")
    served = TRAFFIC["dear"][0] - TRAFFIC["dear"][1]
    assert one.money_usd == charge(PRICES["dear"], served) - charge(PRICES["cheap"], served)
    assert Decimal(one.details["spend_that_would_move_usd"]) == charge(PRICES["dear"], served)


async def test_what_comparable_means_is_the_criteria(ledger: Ledger) -> None:
    # Tolerating three and a half times the latency, `slow` (cheaper than `cheap`) is the better move
    # for `dear`'s traffic, and a move for `cheap`'s too.
    moves = {r.details["from_deployment"]["deployment"]: r
             for r in (await found(ledger, Criteria(max_latency_ratio=3.5)))["cheaper_deployment"]}
    assert {d: r.details["to_deployment"]["deployment"] for d, r in moves.items()} == {"dear": "slow", "cheap": "slow"}
    for dear, served in (("dear", 198), ("cheap", 197)):
        assert moves[dear].money_usd == charge(PRICES[dear], served) - charge(PRICES["slow"], served)
    # Not tolerating half a point more errors, `cheap` (1.5% against 1%) is not comparable either.
    assert "cheaper_deployment" not in await found(ledger, Criteria(max_error_rate_increase=0.004))
    # Nor with too few requests to judge.
    assert "cheaper_deployment" not in await found(ledger, Criteria(min_requests=201))


async def test_exact_repeats_the_cache_would_have_answered(ledger: Ledger) -> None:
    (cache,) = (await found(ledger))["cache"]
    assert cache.details["repeats"] == 3
    assert cache.money_usd == REPEAT_MONEY
    # Every row with a fingerprint that the cache did not answer: the ten above less the one hit.
    assert cache.details["requests"] == len(REPEATS) - 1
    # With a five-minute ttl, the repeat after ten minutes is stored afresh, not a hit; those after five
    # minutes (inclusive) and one still are.
    (short,) = (await found(ledger, Criteria(cache_ttl_s=300)))["cache"]
    assert short.details["repeats"] == 2 and short.money_usd == Decimal("0.16") + Decimal("0.64")


async def test_live_keys_that_spent_but_went_quiet(ledger: Ledger) -> None:
    (idle,) = (await found(ledger))["idle_key"]
    assert idle.subject == "k_idle" and idle.money_usd == Decimal("3.75")
    assert idle.details["last_request_day"] == (NOW - timedelta(days=45)).date().isoformat()
    assert idle.details["budget_usd"] == "50"
    # Idle for ten weeks is not enough to call k_idle (quiet for 45 days) idle.
    assert "idle_key" not in await found(ledger, Criteria(idle_weeks=10))
    # A week of quiet is: k_recent (10 days) joins; k_active (yesterday) and k_never (no spend) do not.
    assert {r.subject for r in (await found(ledger, Criteria(idle_weeks=1)))["idle_key"]} == {"k_idle", "k_recent"}
