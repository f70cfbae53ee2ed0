"""Many replicas, one truth: limits, budgets, revocation and the ledger hold across a fleet of
three gateway replicas (two workers each) behind nginx, driven through the load balancer by the
official openai SDK. The last test kills a replica outright.

Each test prints its figures (`-s` shows them).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import openai
import redis.asyncio as aioredis

from tests.dbs import REDIS_URL
from tests.fleet.calls import COST, Figures, Outcome
from tests.fleet.calls import call as fleet_call
from tests.fleet.conftest import LEASE_S, Fleet, replica_of


async def call(fleet: Fleet, client: openai.AsyncOpenAI, **extra: Any) -> Outcome:
    return await fleet_call(client, lambda headers: replica_of(headers, fleet), **extra)


async def test_a_budget_of_20_calls_holds_under_200_concurrent_requests(fleet: Fleet, figures: Figures) -> None:
    key = fleet.admin().create_key(budget_usd=str(20 * COST))
    client = fleet.client(key["key"])
    outcomes = await asyncio.gather(*(call(fleet, client) for _ in range(200)))
    statuses = Counter((o.status, o.code) for o in outcomes)
    served = statuses[(200, None)]
    by_replica = Counter(o.replica for o in outcomes if o.status == 200)
    figures.note("budget",
                 f"a budget of 20 calls, 200 concurrent requests through 3 replicas: {served} served, "
                 f"{dict(statuses)}, served by replica {dict(by_replica)}")  # fmt: skip
    assert 20 <= served <= 21
    assert statuses[(429, "insufficient_quota")] == 200 - served
    assert len({o.replica for o in outcomes}) == 3  # the load balancer spread them over every replica

    after = await call(fleet, client)
    assert (after.status, after.code) == (429, "insufficient_quota")

    # The live counter and the ledger agree to the micro-dollar: every served call, nothing else.
    rows = await fleet.rows_when(key["id"], lambda rows: len(rows) == 201)
    assert len(rows) == 201
    assert sum(1 for r in rows if r["status"] == 200) == served
    assert sum((r["cost_usd"] for r in rows), Decimal(0)) == served * COST
    assert fleet.admin().spent(key["id"]) == served * COST
    await client.close()


RPM = 60
RPM_LOAD_S = 60.0
RPM_CALLERS = 10  # each sends one request a second: 10 a second against 1 a second allowed


async def test_an_rpm_limit_holds_within_one_request_across_replicas_over_a_minute(
    fleet: Fleet, figures: Figures
) -> None:
    key = fleet.admin().create_key(rpm=RPM)
    client = fleet.client(key["key"])
    started = time.monotonic()
    outcomes: list[Outcome] = []

    async def caller(n: int) -> None:
        await asyncio.sleep(n / RPM_CALLERS)
        tick = started + n / RPM_CALLERS
        while tick < started + RPM_LOAD_S:
            outcomes.append(await call(fleet, client))
            tick += 1.0
            await asyncio.sleep(max(0.0, tick - time.monotonic()))

    await asyncio.gather(*(caller(n) for n in range(RPM_CALLERS)))
    served = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status == 429]
    assert len(served) + len(refused) == len(outcomes), Counter(o.status for o in outcomes)
    assert all(o.code == "rate_limit_exceeded" for o in refused)
    # GCRA admits a full bucket (RPM) at once, then one request every 60 / RPM seconds: over a
    # span T it can admit at most RPM + RPM * T / 60. Measured from the first request sent to the
    # last answer (admissions happen inside that span).
    span = max(o.done for o in outcomes) - min(o.sent for o in outcomes)
    allowed = RPM + RPM * span / 60
    error = (len(served) - allowed) / allowed
    figures.note("rpm",
                 f"rpm {RPM} over {span:.1f} s of {len(outcomes)} requests through 3 replicas: {len(served)} served, "
                 f"GCRA allows {allowed:.1f}, error {error:+.2%}; by replica "
                 f"{dict(Counter(o.replica for o in served))}")  # fmt: skip
    assert len(served) <= allowed + 1
    # Not refusing what it should admit either: a freed slot waits at most 0.1 s for the next caller.
    assert len(served) >= allowed - RPM * span / 60 * 0.1 - 2
    assert len({o.replica for o in served}) == 3
    await client.close()


async def test_a_revocation_through_one_replica_is_refused_by_all_within_a_second(
    fleet: Fleet, figures: Figures
) -> None:
    key = fleet.admin().create_key()
    direct = [openai.AsyncOpenAI(base_url=r.url, api_key=key["key"], max_retries=0) for r in fleet.replicas]

    async def probe(replica: int) -> Outcome:
        return await call(fleet, direct[replica])

    # Every worker of every replica has the key in its cache (several calls each reach both workers).
    for _ in range(3):
        warm = await asyncio.gather(*(probe(n) for n in range(3) for _ in range(8)))
        assert all(o.status == 200 for o in warm)

    # Probes keep going at every replica before, during and after the revocation.
    probes: list[tuple[int, Outcome]] = []
    stop = asyncio.Event()

    async def prober(replica: int) -> None:
        while not stop.is_set():
            probes.append((replica, await probe(replica)))

    probing = [asyncio.create_task(prober(n)) for n in range(3) for _ in range(4)]
    await asyncio.sleep(0.3)
    revoked_at = time.monotonic()
    fleet.admin(0).revoke(key["id"])
    revoke_call = time.monotonic() - revoked_at
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.gather(*probing)
    for _, o in probes:
        assert o.status == 200 or (o.status, o.code) == (401, "invalid_api_key"), o
    before = [o for _, o in probes if o.done < revoked_at]
    assert before and all(o.status == 200 for o in before)
    # Per replica: when its last 200 was answered, from the moment the revoke call was sent (an
    # upper bound: that request was admitted earlier still).
    last_served = {n: round(max((o.done for r, o in probes if r == n and o.status == 200), default=revoked_at)
                            - revoked_at, 3) for n in range(3)}  # fmt: skip
    late = [o for _, o in probes if o.sent > revoked_at + 1.0]
    figures.note("revocation",
                 f"revocation through replica 0 (the call took {revoke_call:.3f} s): the last 200 was answered "
                 f"{max(last_served.values()):.3f} s after the call was sent (by replica: {last_served}); "
                 f"{len(late)} probes sent after 1 s: {Counter(o.status for o in late)}")  # fmt: skip
    assert max(last_served.values()) < 1.0
    assert late and all(o.status == 401 for o in late)
    for client in direct:
        await client.close()


PARALLEL = 4
HOLD_S = LEASE_S * 1.5  # longer than a lease: the slots live on only if their leases are renewed


async def test_max_parallel_holds_across_replicas_for_requests_longer_than_a_lease(
    fleet: Fleet, figures: Figures
) -> None:
    key = fleet.admin().create_key(max_parallel=PARALLEL)
    client = fleet.client(key["key"])
    slow = {"extra_body": {"fake": {"latency_ms": HOLD_S * 1000}}}
    held = [asyncio.create_task(call(fleet, client, **slow)) for _ in range(PARALLEL)]
    # The slots are taken as soon as the requests are admitted; wait until Redis shows them.
    slots = aioredis.Redis.from_url(REDIS_URL)
    deadline = time.monotonic() + 10
    while await slots.zcard(fleet.slots_key(key["id"])) < PARALLEL:
        assert time.monotonic() < deadline, "the parallel requests were not admitted"
        await asyncio.sleep(0.05)
    first_wave = await asyncio.gather(*(call(fleet, client) for _ in range(20)))
    # Past the first lease: the requests still run, their renewed slots still count.
    await asyncio.sleep(LEASE_S + 0.3 - (time.monotonic() - (deadline - 10)))
    second_wave = await asyncio.gather(*(call(fleet, client) for _ in range(20)))
    done = await asyncio.gather(*held)
    await slots.aclose()
    figures.note("max_parallel",
                 f"max_parallel {PARALLEL}: held {[o.status for o in done]} on replicas {[o.replica for o in done]}; "
                 f"while held: {Counter(o.status for o in first_wave)}, after a lease: "
                 f"{Counter(o.status for o in second_wave)}")  # fmt: skip
    assert [o.status for o in done] == [200] * PARALLEL
    for wave in (first_wave, second_wave):
        assert all((o.status, o.code) == (429, "rate_limit_exceeded") for o in wave)
    assert len({o.replica for o in first_wave + second_wave}) == 3
    # Given back at settle: all of them at once again.
    again = await asyncio.gather(*(call(fleet, client) for _ in range(PARALLEL)))
    assert [o.status for o in again] == [200] * PARALLEL
    await client.close()


KILLED = 2
STEADY_CALLERS = 16
SLOT_CALLERS = 16
SLOTS = 12


async def test_a_replica_killed_mid_load_loses_nothing_the_survivors_answered(fleet: Fleet, figures: Figures) -> None:
    """SIGKILL one replica (master and workers) under load: the others keep serving, its parallel
    slots come back within one lease, every request the survivors answered has its ledger row,
    and the spend counter matches the ledger. What the killed replica's in-memory queue held is
    lost; the test measures how much."""
    steady = fleet.admin().create_key(budget_usd="1000")
    slotted = fleet.admin().create_key(max_parallel=SLOTS)
    steady_client, slot_client = fleet.client(steady["key"]), fleet.client(slotted["key"])
    steady_out: list[Outcome] = []
    slot_out: list[Outcome] = []
    stop_steady = asyncio.Event()
    stop_slots = asyncio.Event()

    async def steady_caller() -> None:
        while not stop_steady.is_set():
            steady_out.append(await call(fleet, steady_client, extra_body={"fake": {"latency_ms": 100}}))

    async def slot_caller() -> None:
        while not stop_slots.is_set():
            outcome = await call(fleet, slot_client, extra_body={"fake": {"latency_ms": 1000}})
            slot_out.append(outcome)
            if outcome.status == 429:
                await asyncio.sleep(0.1)

    tasks = [asyncio.create_task(steady_caller()) for _ in range(STEADY_CALLERS)]
    slot_tasks = [asyncio.create_task(slot_caller()) for _ in range(SLOT_CALLERS)]
    await asyncio.sleep(4.0)
    stop_slots.set()  # no new slotted requests; those in flight run to their end (or die)
    killed_at = time.monotonic()
    fleet.replicas[KILLED].kill()
    await asyncio.gather(*slot_tasks)
    await asyncio.sleep(0.2)  # a survivor settles just after its answer is sent

    # The killed replica's parallel slots: still taken now that every survivor's slotted request
    # has ended, then free within one lease of the kill.
    slots = aioredis.Redis.from_url(REDIS_URL)
    name = fleet.slots_key(slotted["id"])
    stranded = await slots.zcount(name, int(time.time() * 1000), "+inf")
    stranded_at = time.monotonic() - killed_at
    while await slots.zcount(name, int(time.time() * 1000), "+inf") > 0:
        assert time.monotonic() - killed_at < LEASE_S + 1.0, "the killed replica's slots outlived their lease"
        await asyncio.sleep(0.02)
    freed_after = time.monotonic() - killed_at
    await slots.aclose()
    back = await asyncio.gather(*(call(fleet, slot_client) for _ in range(SLOTS)))
    assert [o.status for o in back] == [200] * SLOTS

    await asyncio.sleep(max(0.0, killed_at + 8.0 - time.monotonic()))
    stop_steady.set()
    await asyncio.gather(*tasks)
    # The others kept serving: every request sent after the kill was answered.
    after = [o for o in steady_out if o.sent > killed_at + 0.05]
    assert after and all(o.status == 200 for o in after), Counter((o.status, o.code) for o in after)
    assert {o.replica for o in after} == {0, 1}
    cut = [o for o in steady_out + slot_out if o.status == 502]  # in flight on the killed replica
    slot_cut = sum(1 for o in slot_out if o.status == 502)

    # The ledger: a row for every request a survivor answered; the killed one's queue is what was lost.
    answered = [o for o in steady_out + slot_out if o.status == 200]
    by_survivors = {o.request_id for o in answered if o.replica != KILLED}
    by_killed = {o.request_id for o in answered if o.replica == KILLED}
    rows: dict[str, Any] = {}
    deadline = time.monotonic() + 15
    while not by_survivors <= rows.keys() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)  # the survivors' writers flush every 0.2 s
        rows = {r["request_id"]: r for key in (steady, slotted) for r in await fleet.rows(key["id"])}
    missing = by_survivors - rows.keys()
    lost = by_killed - rows.keys()
    steady_rows = [r for r in rows.values() if r["request_id"] in {o.request_id for o in steady_out}]
    ledger_spend = sum((r["cost_usd"] for r in steady_rows), Decimal(0))
    counter = fleet.admin().spent(steady["id"])
    lost_steady = len(lost & {o.request_id for o in steady_out})
    steady_cut = sum(1 for o in steady_out if o.status == 502)
    figures.note("sigkill",
                 f"SIGKILL of replica {KILLED} after 4 s of load: {len(answered)} answered "
                 f"({len(by_survivors)} by survivors, {len(by_killed)} by the killed one), {len(cut)} cut "
                 f"mid-request (502); "
                 f"survivors' rows kept {len(by_survivors) - len(missing)}/{len(by_survivors)}; the killed replica's "
                 f"in-memory ledger queue lost {len(lost)} of its {len(by_killed)} answered requests; "
                 f"{stranded} slots stranded {stranded_at:.2f} s after the kill ({slot_cut} slotted requests "
                 f"cut), all free "
                 f"{freed_after:.2f} s after it "
                 f"(lease {LEASE_S:g} s); steady key: counter ${counter}, ledger ${ledger_spend}, "
                 f"difference {(counter - ledger_spend) / COST} calls = {lost_steady} lost rows + "
                 f"{(counter - ledger_spend) / COST - lost_steady} of {steady_cut} cut requests")  # fmt: skip
    assert not missing, f"{len(missing)} answered requests of the survivors have no ledger row"
    assert slot_cut >= 1 and stranded >= 1, "the kill caught no slotted request in flight: nothing was tested"
    assert freed_after <= LEASE_S + 1.0
    # Spend: the counter holds every admitted request (answered or cut), the ledger every row
    # kept. Their difference is exactly the killed replica's lost rows plus the cut requests it had
    # already admitted.
    extra = (counter - ledger_spend) / COST
    assert extra == int(extra) and lost_steady <= extra <= lost_steady + steady_cut
    await steady_client.close()
    await slot_client.close()
