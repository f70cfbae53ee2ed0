"""One contract for both failed-authentication counters (in process, and Redis), and the throttle over them.

The clock is injected and moved by hand, so every figure is exact.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio

from gateway.core.errors import RateLimited
from gateway.identity.throttle import AuthThrottle, FailureCounter, MemoryCounter, RedisCounter, key_bucket, user_bucket
from tests.dbs import REDIS_URL
from tests.procs import free_port

BURST, REFILL_S = 3, 2.0
MakeCounter = Callable[[], Awaitable[FailureCounter]]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def make_counter(request: pytest.FixtureRequest) -> AsyncIterator[MakeCounter]:
    """Counters over one store: for Redis each is a client of its own, as another worker would be."""
    prefix = "th" + secrets.token_hex(5)
    shared = MemoryCounter()
    made: list[FailureCounter] = []

    async def make() -> FailureCounter:
        if request.param == "memory":
            return shared
        counter = RedisCounter(REDIS_URL, prefix, timeout_s=2.0)
        made.append(counter)
        return counter

    yield make
    for counter in made:
        await counter.close()
    if request.param == "redis":
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        async for key in client.scan_iter(match="{" + prefix + "*"):
            await client.delete(key)
        await client.aclose()


async def test_a_burst_then_one_failure_per_refill(make_counter: MakeCounter) -> None:
    counter = await make_counter()
    now, refill = 1_800_000_000_000, 2000
    assert [await counter.fail("a:1.2.3.4", now, refill, BURST) for _ in range(BURST)] == [0] * BURST
    assert await counter.fail("a:1.2.3.4", now, refill, BURST) == refill  # over: wait one refill
    assert await counter.fail("a:1.2.3.4", now + 500, refill, BURST) == refill - 500  # not counted, nearer
    assert await counter.fail("a:5.6.7.8", now, refill, BURST) == 0  # another bucket
    assert await counter.fail("a:1.2.3.4", now + refill, refill, BURST) == 0  # one more after a refill
    assert await counter.fail("a:1.2.3.4", now + refill, refill, BURST) == refill
    later = now + refill * (BURST + 1)
    assert [await counter.fail("a:1.2.3.4", later, refill, BURST) for _ in range(BURST)] == [0] * BURST


async def test_counters_share_one_count(make_counter: MakeCounter) -> None:
    one, other = await make_counter(), await make_counter()
    now = 1_800_000_000_000
    for _ in range(BURST):
        assert await one.fail("k:sk-gw-abcdef", now, 1000, BURST) == 0
    assert await other.fail("k:sk-gw-abcdef", now, 1000, BURST) == 1000


async def test_the_throttle_holds_an_address_back_and_lets_it_go(make_counter: MakeCounter) -> None:
    clock = Clock()
    throttle = AuthThrottle(await make_counter(), burst=BURST, refill_s=REFILL_S, clock=clock)
    throttle.check("10.0.0.1")  # nothing held: nothing to look at
    assert throttle.held == {}
    for _ in range(BURST):
        await throttle.failed("10.0.0.1")
    with pytest.raises(RateLimited) as over:
        await throttle.failed("10.0.0.1")
    assert (over.value.status, over.value.retry_after) == (429, REFILL_S)
    assert over.value.headers()["retry-after"] == "2"
    with pytest.raises(RateLimited):
        throttle.check("10.0.0.1")  # even the right key: a guesser must not learn which guess was right
    throttle.check("10.0.0.2")
    clock.now += REFILL_S
    throttle.check("10.0.0.1")
    assert throttle.held == {}
    await throttle.failed("10.0.0.1")  # one more try after a refill


async def test_a_key_prefix_is_held_back_whichever_address_guesses(make_counter: MakeCounter) -> None:
    clock = Clock()
    throttle = AuthThrottle(await make_counter(), burst=BURST, refill_s=REFILL_S, clock=clock)
    prefix = key_bucket("sk-gw-Abc123")
    for n in range(BURST):
        await throttle.failed(f"10.0.1.{n}", prefix)
    with pytest.raises(RateLimited):
        await throttle.failed("10.0.1.99", prefix)
    with pytest.raises(RateLimited):
        throttle.check("10.0.2.1", prefix)  # a fresh address, the same key
    throttle.check("10.0.2.1", key_bucket("sk-gw-Other1"))
    throttle.check("10.0.2.1", user_bucket("ada"))


async def test_a_worker_learns_of_a_held_bucket_at_its_own_next_failure(make_counter: MakeCounter) -> None:
    clock = Clock()
    first = AuthThrottle(await make_counter(), burst=BURST, refill_s=REFILL_S, clock=clock)
    second = AuthThrottle(await make_counter(), burst=BURST, refill_s=REFILL_S, clock=clock)
    for _ in range(BURST):
        await first.failed("10.0.3.1")
    second.check("10.0.3.1")  # it has not heard yet: one attempt may pass here
    with pytest.raises(RateLimited):
        await second.failed("10.0.3.1")
    with pytest.raises(RateLimited):
        second.check("10.0.3.1")


async def test_without_redis_failures_are_counted_in_process(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    dead = RedisCounter(f"redis://127.0.0.1:{free_port()}/0", "th", timeout_s=0.5)
    throttle = AuthThrottle(dead, burst=BURST, refill_s=REFILL_S, clock=clock)
    with caplog.at_level(logging.WARNING, logger="gateway.auth"):
        for _ in range(BURST):
            await throttle.failed("10.0.4.1")
        with pytest.raises(RateLimited):
            await throttle.failed("10.0.4.1")
    assert "counted per process" in caplog.text
    await dead.close()
