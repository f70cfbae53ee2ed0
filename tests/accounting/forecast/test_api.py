"""Forecasts through a real gateway on each store: the admin API, the gauges and the webhook alert."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.accounting.forecast import project
from tests.dbs import create_pg_database, drop_pg_database
from tests.observability.receiver import Receiver
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
WEEK = (120, 130, 125, 120, 110, 45, 50)


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    await hook.start()
    yield hook
    await hook.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, upstream: FakeUpstream, receiver: Receiver,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp(f"forecast-{request.param}")
    settings: dict[str, Any] = {"forecast_interval_s": 0.5, "alert_webhooks": [receiver.url]}
    dsn = None
    if request.param == "postgres":
        dsn = settings["database_url"] = create_pg_database()
    gateway = Gateway(tmp, [{"name": "gpt-test", "deployments": [deployment(upstream)]}], settings=settings)
    gateway.dsn = dsn  # type: ignore[attr-defined]
    gateway.sqlite = tmp / "gateway-data" / "gateway.db"  # type: ignore[attr-defined]
    yield gateway
    gateway.close()
    if dsn is not None:
        drop_pg_database(dsn)


def history(today: date) -> list[tuple[date, Decimal]]:
    return [(day, Decimal(WEEK[day.weekday()])) for day in (today - timedelta(days=i) for i in range(56, -1, -1))]


async def seed(gw: Gateway, team_id: str, days: list[tuple[date, Decimal]], key_id: str = "key_x") -> None:
    rows = [(d, team_id, key_id, "gpt-test", "openai", 10, 0, 1000, 100, 0, 0, str(v), 0) for d, v in days]
    dsn = gw.dsn  # type: ignore[attr-defined]
    if dsn is not None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.executemany("INSERT INTO ledger_daily VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                                   "$12::numeric, $13)", rows)
            await conn.executemany("INSERT INTO ledger_daily_teams VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                                   "$11::numeric, $12)", [(*r[:2], *r[3:]) for r in rows])
        finally:
            await conn.close()
    else:
        conn2 = sqlite3.connect(gw.sqlite)  # type: ignore[attr-defined]
        conn2.executemany("INSERT INTO ledger_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          [(r[0].isoformat(), *r[1:]) for r in rows])
        conn2.commit()
        conn2.close()


async def test_a_budget_projected_to_run_out_is_forecast_exported_and_alerted_once(
        gw: Gateway, receiver: Receiver) -> None:
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=gw.base, headers=ADMIN, timeout=30) as http:
        tight = (await http.post("/admin/api/teams", json={"name": f"tight-{gw.port}", "budget_usd": "5",
                                                           "budget_period": "monthly"})).json()
        loose = (await http.post("/admin/api/teams", json={"name": f"loose-{gw.port}", "budget_usd": "1000000",
                                                           "budget_period": "monthly"})).json()
        key = (await http.post("/admin/api/keys", json={"name": f"tight-key-{gw.port}", "budget_usd": "5",
                                                        "budget_period": "monthly"})).json()
        days = history(today)
        await seed(gw, tight["id"], days)
        await seed(gw, loose["id"], days)
        await seed(gw, f"keys-team-{gw.port}", days, key_id=key["id"])
        found = {f["id"]: f for f in (await http.get("/admin/api/forecasts")).json()["data"]}
    t, ok, k = found[tight["id"]], found[loose["id"]], found[key["id"]]
    first = today.replace(day=1)
    spent = sum((v for d, v in days if d >= first), Decimal(0))
    assert Decimal(t["spent_usd"]) == spent
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    assert t["period_start"] == first.isoformat() and t["period_end"] == last.isoformat()
    expected = project(days, spent, today, last, Decimal(5))
    assert Decimal(t["projected_usd"]) == expected.projected
    # The weekly shape is learnt: a seasonal series is forecast almost exactly.
    truth = spent + sum(Decimal(WEEK[(today + timedelta(days=i)).weekday()]) for i in range((last - today).days + 1))
    assert abs(Decimal(t["projected_usd"]) - truth) <= Decimal("0.02") * truth
    assert t["runs_out_before_period_end"] is True and t["runs_out_on"] == today.isoformat()
    assert ok["runs_out_before_period_end"] is False and ok["runs_out_on"] is None
    assert [d for d, _ in t["history"]][-1] == today.isoformat()
    # A key's budget is forecast from its own rows of the rollup, as a team's.
    assert k["scope"] == "key" and k["spent_usd"] == t["spent_usd"] and k["projected_usd"] == t["projected_usd"]
    assert k["runs_out_before_period_end"] is True

    async with asyncio.timeout(30):  # a bound for a hung test, not a timing assertion
        while True:
            receiver.arrived.clear()  # before looking, so a post that lands meanwhile still wakes us
            ids = {a["budget_forecast"]["id"] for a in receiver.received}
            if {tight["id"], key["id"]} <= ids:
                break
            await receiver.arrived.wait()
    alerts = receiver.received
    mine = [a for a in alerts if a["budget_forecast"]["id"] == tight["id"]]
    assert len(mine) == 1 and "projected" in mine[0]["text"]
    assert not [a for a in alerts if a["budget_forecast"]["id"] == loose["id"]]
    await asyncio.sleep(2)  # several more rounds of the watcher: the claim holds, nothing more is posted
    assert len([a for a in receiver.received if a["budget_forecast"]["id"] == tight["id"]]) == 1
    assert len([a for a in receiver.received if a["budget_forecast"]["id"] == key["id"]]) == 1
    async with httpx.AsyncClient(base_url=gw.base, headers=ADMIN) as http:
        metrics = (await http.get("/metrics")).text
    assert f'llm_gateway_budget_projected_overrun{{id="{tight["id"]}",scope="team"}} 1.0' in metrics
    assert f'llm_gateway_budget_projected_overrun{{id="{loose["id"]}",scope="team"}} 0.0' in metrics
    projected = [line for line in metrics.splitlines()
                 if line.startswith(f'llm_gateway_budget_projected_usd{{id="{tight["id"]}",scope="team"}} ')]
    assert projected and float(projected[0].rsplit(" ", 1)[1]) == pytest.approx(float(t["projected_usd"]))


def test_the_forecasts_page_draws_each_budget(gw: Gateway) -> None:
    from tests.admin_ui.conftest import Session

    today = datetime.now(UTC).date()
    teams = {period: httpx.post(gw.base + "/admin/api/teams", headers=ADMIN, json={
        "name": f"page-{period}-{gw.port}", "budget_usd": "7", "budget_period": period}).json()
        for period in ("weekly", "monthly")}
    for team in teams.values():
        asyncio.run(seed(gw, team["id"], history(today)))
    ui = Session(gw.base)
    try:
        assert ui.sign_in("", MASTER_KEY).status_code == 303
        page = ui.http.get("/admin/forecasts")
    finally:
        ui.close()
    assert page.status_code == 200
    cards = {period: page.text.split(f'data-forecast="team:{team["id"]}"', 1)[1].split("</section>", 1)[0]
             for period, team in teams.items()}
    for period, card in cards.items():
        # The budget line, the projection, and the spend so far (none when the period starts today:
        # today is projected in full).
        assert "<svg" in card and 'class="budget"' in card and 'class="projected"' in card
        starts_today = today.weekday() == 0 if period == "weekly" else today.day == 1
        assert ('class="actual"' in card) is not starts_today, period
    assert "-W" in cards["weekly"]  # a weekly period is named like 2026-W49
    assert 'href="/admin/forecasts"' in page.text
