"""Parallel-slot leases: short, renewed while a request lives, never reviving a slot given up.

Over every backend (in-process, Redis, Redis Cluster), like the contract suite; each limiter made
by `make_limiter` stands for a process of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from gateway.accounting.limits import Limiter, LimiterOptions
from gateway.accounting.limits.checks import Backend, Kind
from gateway.accounting.limits.redis_backend import RedisBackend
from gateway.core.errors import RateLimited
from gateway.core.types import Limits
from tests.accounting.limits.conftest import MODEL, PRICE, FakeClock, admit_held, key, request, served, settle_held
from tests.accounting.limits.servers import PrivateRedis

MakeLimiter = Callable[..., Awaitable[Limiter]]
LEASE_S = 30


async def _refused(limiter: Limiter, principal: object) -> bool:
    try:
        await admit_held(limiter, request(principal))  # type: ignore[arg-type]
    except RateLimited as error:
        assert "parallel" in error.message
        return True
    return False


async def test_a_renewed_slot_outlives_its_first_lease(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    holder = await make_limiter(lease_s=LEASE_S)
    other = await make_limiter(lease_s=LEASE_S)
    principal = key(Limits(max_parallel=1))
    running = request(principal)
    await admit_held(holder, running)
    clock.advance(20)
    assert await holder.leases.renew() == 1
    clock.advance(20)  # 40 s after admission, 20 s after the renewal
    assert await _refused(other, principal)
    clock.advance(10.001)  # the renewed lease ran out: the holder is as good as dead
    assert not await _refused(other, principal)


async def test_a_settled_slot_is_not_renewed_back(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter(lease_s=LEASE_S)
    principal = key(Limits(max_parallel=1))
    done = request(principal)
    await admit_held(limiter, done)
    reservation = done.reservation
    await settle_held(limiter, served(done, 1, 1))
    assert limiter.leases.held() == 0
    assert await limiter.leases.renew() == 0

    # Asked outright, the backend finds nothing to renew and says so; the slot stays free.
    [slot] = [c.key for c in reservation.checks if c.kind is Kind.PARALLEL]  # type: ignore[attr-defined]
    member = reservation.member  # type: ignore[attr-defined]
    backend: Backend = limiter.backend
    assert await backend.renew([(slot, member)], int(limiter.clock() * 1000), LEASE_S * 1000) == [member]
    assert not await _refused(limiter, principal)


async def test_a_lapsed_slot_is_not_revived_and_is_counted(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    stalled = await make_limiter(lease_s=LEASE_S)
    other = await make_limiter(lease_s=LEASE_S)
    principal = key(Limits(max_parallel=1))
    await admit_held(stalled, request(principal))
    clock.advance(LEASE_S + 0.001)  # no renewal reached the store for a whole lease
    assert not await _refused(other, principal)  # the slot went to someone else
    assert await stalled.leases.renew() == 0
    assert stalled.leases.lapsed == 1
    assert await _refused(other, principal)  # still one slot, held by the other: not two


async def test_only_the_parallel_slots_are_kept(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter(lease_s=LEASE_S)
    await admit_held(limiter, request(key(Limits(rpm=10, tpm=10_000))))
    assert limiter.leases.held() == 0
    # Key and team each with a parallel cap: two slots for one request.
    await admit_held(limiter, request(key(Limits(max_parallel=2), Limits(max_parallel=5))))
    assert limiter.leases.held() == 2
    assert await limiter.leases.renew() == 2


# The keeper on a real clock: a request that runs for several leases keeps its slot, and a process
# that stops renewing (as a killed one does) loses it within one lease.

REAL_LEASE_S = 0.6


@pytest.fixture
async def real_time_limiters(
    make_backend: Callable[[], Awaitable[Backend]], prefix: str
) -> AsyncIterator[Callable[[], Awaitable[Limiter]]]:
    made: list[Limiter] = []

    async def make() -> Limiter:
        limiter = Limiter(await make_backend(), options=LimiterOptions(prefix=prefix, lease_s=REAL_LEASE_S),
                          model_prices={MODEL: PRICE}, clock=time.time)  # fmt: skip
        await limiter.start()
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.leases.stop()
    for backend in {id(limiter.backend): limiter.backend for limiter in made}.values():
        await backend.close()  # the in-process backend is one, shared by every limiter here


async def test_the_keeper_holds_a_long_request_and_a_dead_process_frees_it_within_a_lease(
    real_time_limiters: Callable[[], Awaitable[Limiter]],
) -> None:
    holder = await real_time_limiters()
    other = await real_time_limiters()
    principal = key(Limits(max_parallel=1))
    await admit_held(holder, request(principal))
    for _ in range(5):  # 2.5 leases
        await asyncio.sleep(REAL_LEASE_S / 2)
        assert await _refused(other, principal)
    assert holder.leases.renewals >= 5 and holder.leases.lapsed == 0

    await holder.leases.stop()  # the process "dies": no more renewals, no settle
    died = time.monotonic()
    while await _refused(other, principal):
        assert time.monotonic() - died < REAL_LEASE_S + 0.5, "the dead process's slot outlived its lease"
        await asyncio.sleep(0.02)


# One call per renewal for all the requests of a process, counted by Redis itself.


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()


async def test_a_renewal_is_one_redis_call_for_every_request_in_flight(
    private_redis: PrivateRedis, clock: FakeClock
) -> None:
    limiter = Limiter(RedisBackend(private_redis.url, timeout_s=2.0), options=LimiterOptions(prefix="lease"),
                      model_prices={MODEL: PRICE}, clock=clock)  # fmt: skip
    await limiter.backend.start()
    try:
        for n in range(30):
            principal = key(Limits(max_parallel=100), Limits(max_parallel=100), key_id=f"key-{n % 3}")
            await admit_held(limiter, request(principal))
        with private_redis.client() as client:
            client.config_resetstat()
            assert await limiter.leases.renew() == 60
            calls = client.info("commandstats")["cmdstat_evalsha"]["calls"]
        assert calls == 1
    finally:
        await limiter.close()
