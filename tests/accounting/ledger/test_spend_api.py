"""The spend endpoints over both stores: grouped totals from the rollup, raw rows by keyset pages, CSV."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.accounting.ledger.postgres import PostgresSink
from gateway.accounting.ledger.row import COLUMNS, EPOCH, LedgerRow
from gateway.accounting.ledger.sink import Sink
from gateway.accounting.ledger.sqlite import SQLiteSink
from gateway.db.connect import SQLITE_FILE
from tests.accounting.ledger.helpers import migrate, migrate_sqlite_file, run
from tests.dbs import create_pg_database, drop_pg_database
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

DAY = date(2030, 1, 10)
DAYS = [DAY - timedelta(days=2), DAY - timedelta(days=1), DAY]
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
RANGE = {"start": DAYS[0].isoformat(), "end": DAY.isoformat()}


def synthetic_rows() -> list[LedgerRow]:
    rng = random.Random(4)
    rows = []
    for i in range(90):
        day = DAYS[i % 3]
        ts = datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60), tzinfo=UTC)
        status = rng.choice([200, 200, 200, 429, 502])
        cost = None if i % 17 == 0 else Decimal(rng.randrange(1, 10_000)) / Decimal(10**7)
        rows.append(LedgerRow(
            ts_us=(ts - EPOCH) // timedelta(microseconds=1) + i, request_id=f"req_{i:03d}", endpoint="chat/completions",
            key_id=f"k{i % 3}", key_prefix=f"sk-gw-k{i % 3}", team_id=rng.choice(["t1", "t2", None]),
            requested_model=rng.choice(["m1", "m2"]), provider=rng.choice(["openai", "anthropic"]),
            status=status, error_type=None if status == 200 else "server_error",
            prompt_tokens=rng.randrange(100), completion_tokens=rng.randrange(100), cost_usd=cost,
            tags={"i": str(i)},
        ))  # fmt: skip
    return rows


ROWS = synthetic_rows()


async def _seed(sink: Sink) -> None:
    await sink.open()
    try:
        assert await sink.write(ROWS) == len(ROWS)
    finally:
        await sink.close()


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def spend_gateway(
    request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("spend")
    settings: dict[str, Any] = {"data_dir": str(tmp / "data")}
    dsn = None
    if request.param == "postgres":
        dsn = create_pg_database()
        migrate(dsn)
        settings["database_url"] = dsn
        run(_seed(PostgresSink(dsn, premake_days=1, retention_days=0)))
    else:
        migrate_sqlite_file(tmp / "data" / SQLITE_FILE)
        run(_seed(SQLiteSink(tmp / "data" / SQLITE_FILE, retention_days=0)))
    gw = Gateway(tmp, [{"name": "m1", "deployments": [deployment(upstream)]}], settings=settings)
    yield gw
    gw.close()
    if dsn is not None:
        drop_pg_database(dsn)


def get(gw: Gateway, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{gw.base}/admin/api/ledger/{path}", params=params, headers=AUTH, timeout=30)


def expected(group_by: list[str], rows: list[LedgerRow]) -> dict[tuple[str | None, ...], dict[str, Any]]:
    columns = {"team": "team_id", "key": "key_id", "model": "requested_model", "provider": "provider"}
    totals: dict[tuple[str | None, ...], dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": Decimal(0),
                 "unpriced": 0})  # fmt: skip
    for row in rows:
        key = tuple(row.day.isoformat() if g == "day" else getattr(row, columns[g]) for g in group_by)
        t = totals[key]
        t["requests"] += 1
        t["errors"] += row.is_error
        t["prompt_tokens"] += row.prompt_tokens
        t["completion_tokens"] += row.completion_tokens
        t["cost_usd"] += row.cost_usd or 0
        t["unpriced"] += row.cost_usd is None
    return dict(totals)


def as_found(group_by: list[str], data: list[dict[str, Any]]) -> dict[tuple[str | None, ...], dict[str, Any]]:
    return {
        tuple(item[g] for g in group_by): {
            "requests": item["requests"], "errors": item["errors"], "prompt_tokens": item["prompt_tokens"],
            "completion_tokens": item["completion_tokens"], "cost_usd": Decimal(item["cost_usd"]),
            "unpriced": item["unpriced"],
        }
        for item in data
    }  # fmt: skip


@pytest.mark.parametrize("group_by", [["team"], ["key"], ["model"], ["provider"], ["day"], ["day", "team", "model"]])
def test_spend_grouped(spend_gateway: Gateway, group_by: list[str]) -> None:
    response = get(spend_gateway, "spend", group_by=",".join(group_by), **RANGE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert as_found(group_by, body["data"]) == expected(group_by, ROWS)
    assert body["total"]["requests"] == len(ROWS)
    assert Decimal(body["total"]["cost_usd"]) == sum((r.cost_usd or Decimal(0) for r in ROWS), Decimal(0))


def test_spend_filtered_and_ranged(spend_gateway: Gateway) -> None:
    body = get(spend_gateway, "spend", group_by="day", team="t1", model="m2", **RANGE).json()
    chosen = [r for r in ROWS if r.team_id == "t1" and r.requested_model == "m2"]
    assert as_found(["day"], body["data"]) == expected(["day"], chosen)
    one_day = get(spend_gateway, "spend", start=DAY.isoformat(), end=DAY.isoformat()).json()
    assert one_day["total"]["requests"] == sum(r.day == DAY for r in ROWS)


@pytest.mark.parametrize(("group_by", "filters", "chosen"), [
    ("key", {"keys": "k0,k2"}, lambda r: r.key_id in ("k0", "k2")),
    ("key", {"keys": "k1,k1,nobody"}, lambda r: r.key_id == "k1"),
    ("model", {"keys": "k2", "model": "m1"}, lambda r: r.key_id == "k2" and r.requested_model == "m1"),
    ("team", {"teams": "t1,t2"}, lambda r: r.team_id in ("t1", "t2")),
    ("key", {"teams": "t2"}, lambda r: r.team_id == "t2"),
])  # fmt: skip
def test_spend_of_a_list_of_keys_or_teams(spend_gateway: Gateway, group_by: str, filters: dict[str, str],
                                          chosen: Any) -> None:
    """`keys=` / `teams=`: a page of the admin UI's keys or teams in one question, only their rows."""
    body = get(spend_gateway, "spend", group_by=group_by, **filters, **RANGE).json()
    rows = [r for r in ROWS if chosen(r)]
    assert rows and as_found([group_by], body["data"]) == expected([group_by], rows)
    assert body["total"]["requests"] == len(rows)


def test_spend_csv_matches_json(spend_gateway: Gateway) -> None:
    json_body = get(spend_gateway, "spend", group_by="team,provider", **RANGE).json()
    response = get(spend_gateway, "spend", group_by="team,provider", format="csv", **RANGE)
    assert response.headers["content-type"].startswith("text/csv")
    records = list(csv.DictReader(io.StringIO(response.text)))
    assert len(records) == len(json_body["data"])
    for record, item in zip(records, json_body["data"], strict=True):
        assert (record["team"] or None, record["provider"]) == (item["team"], item["provider"])
        assert (int(record["requests"]), Decimal(record["cost_usd"])) == (item["requests"], Decimal(item["cost_usd"]))


def test_requests_keyset_pages_cover_everything_once(spend_gateway: Gateway) -> None:
    window = {"start": DAYS[0].isoformat(), "end": (DAY + timedelta(days=1)).isoformat()}
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**window, "limit": 7, **({"cursor": cursor} if cursor else {})}
        body = get(spend_gateway, "requests", **params).json()
        seen += body["data"]
        cursor = body["next_cursor"]
        assert body["has_more"] is (cursor is not None)
        if cursor is None:
            break
    newest_first = sorted(ROWS, key=lambda r: (r.ts_us, r.request_id), reverse=True)
    assert [r["request_id"] for r in seen] == [r.request_id for r in newest_first]
    first = next(r for r in ROWS if r.request_id == seen[0]["request_id"])
    assert seen[0]["cost_usd"] == (str(first.cost_usd) if first.cost_usd is not None else None)
    assert seen[0]["tags"] == first.tags and seen[0]["ts"] == first.ts.isoformat(timespec="microseconds")


def test_requests_filtered_and_csv(spend_gateway: Gateway) -> None:
    window = {"start": DAYS[0].isoformat(), "end": (DAY + timedelta(days=1)).isoformat()}
    body = get(spend_gateway, "requests", team="t2", status=502, limit=1000, **window).json()
    wanted = {r.request_id for r in ROWS if r.team_id == "t2" and r.status == 502}
    assert {r["request_id"] for r in body["data"]} == wanted and wanted
    by_key = get(spend_gateway, "requests", key="k1", model="m1", limit=1000, **window).json()
    assert {r["request_id"] for r in by_key["data"]} == {
        r.request_id for r in ROWS if r.key_id == "k1" and r.requested_model == "m1"}
    exported = get(spend_gateway, "requests", format="csv", **window)
    records = list(csv.DictReader(io.StringIO(exported.text)))
    assert list(records[0]) == list(COLUMNS)
    assert sorted(r["request_id"] for r in records) == sorted(r.request_id for r in ROWS)
    assert all(r["tags"] == f"i={int(r['request_id'][4:])}" for r in records)


def test_admin_only_and_bad_input(spend_gateway: Gateway) -> None:
    base = f"{spend_gateway.base}/admin/api/ledger"
    assert httpx.get(f"{base}/spend").status_code == 401
    assert httpx.get(f"{base}/requests", headers={"Authorization": "Bearer sk-nope"}).status_code == 401
    for path, params, param in [
        ("spend", {"group_by": "colour"}, "group_by"),
        ("spend", {"start": "yesterday"}, "start"),
        ("spend", {"start": "2030-02-01", "end": "2030-01-01"}, "start"),
        ("spend", {"keys": "k0,,k1"}, "keys"),
        ("spend", {"keys": ",".join(f"k{i}" for i in range(101))}, "keys"),
        ("spend", {"teams": "t1,t\x00"}, "teams"),
        ("spend", {"teams": "t1;t2"}, "teams"),
        ("requests", {"cursor": "garbage"}, "cursor"),
        ("requests", {"limit": "0"}, "limit"),
        ("requests", {"format": "xml"}, "format"),
    ]:
        response = get(spend_gateway, path, **params)
        assert response.status_code == 400, (path, params)
        assert response.json()["error"]["param"] == param
    status = get(spend_gateway, "status").json()
    assert status["enabled"] is True and status["sink"] in ("postgres", "sqlite")

