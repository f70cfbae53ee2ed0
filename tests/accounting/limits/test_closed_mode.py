"""Closed mode sheds only while Redis is really down (issue 17, item 8).

On a private redis-server: a worker whose event loop is late is not a slow Redis; one slow moment
of a healthy Redis (`DEBUG SLEEP` past the timeout) fails only the calls that waited on it and does
not switch to the failure mode; a paused (SIGSTOP) or stopped Redis does. Each runs on both event
loops the gateway may use (uvloop runs due timers before it polls sockets, asyncio after).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from gateway.accounting.limits import Limiter, LimiterOptions
from gateway.accounting.limits.redis_backend import RedisBackend
from gateway.accounting.limits.resp import Script, ScriptChannel
from gateway.core.errors import ServiceUnavailable
from gateway.core.types import Limits
from tests.accounting.limits.conftest import FakeClock, admit_held, key, request, settle_held
from tests.accounting.limits.servers import PrivateRedis

TIMEOUT_S = 0.3
# Long enough that a test passing through it would show: nothing here may wait for it.
RECHECK_S = 30.0
ECHO = Script("redis.call('INCR', KEYS[1]) return ARGV[1]")
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
Run = Callable[[Awaitable[Any]], Any]


@pytest.fixture(params=list(LOOPS))
def run(request: pytest.FixtureRequest) -> Run:
    def run(coro: Awaitable[Any]) -> Any:
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:
            return runner.run(coro)  # type: ignore[arg-type]

    return run


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path, "--enable-debug-command", "yes")
    yield redis
    redis.stop()


def closed_limiter(url: str) -> Limiter:
    return Limiter(RedisBackend(url, timeout_s=TIMEOUT_S),
                   options=LimiterOptions(prefix="lclosed", failure_mode="closed", recheck_s=RECHECK_S),
                   clock=FakeClock())  # fmt: skip


async def admit(limiter: Limiter, principal: object) -> str:
    ctx = request(principal)  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(admit_held(limiter, ctx), 10)
    except ServiceUnavailable:
        return "503"
    await settle_held(limiter, ctx)
    return "ok"


def lag(seconds: float) -> None:
    """The event loop held up, as a worker on a busy core is: nothing else runs meanwhile."""
    time.sleep(seconds)


def debug_sleep(server: PrivateRedis, seconds: float) -> threading.Thread:
    """Redis busy for `seconds` (a slow moment: a fork, a long command), from another client."""

    def sleep() -> None:
        with server.client() as client:
            client.execute_command("DEBUG", "SLEEP", seconds)

    thread = threading.Thread(target=sleep)
    thread.start()
    time.sleep(0.05)  # the sleep has begun
    return thread


def test_a_late_event_loop_is_not_a_slow_redis(server: PrivateRedis, run: Run) -> None:
    async def scenario() -> list[Any]:
        channel = ScriptChannel(server.url, timeout_s=TIMEOUT_S)
        try:
            await channel.run(ECHO, ["n"], ["connects"])
            calls = [asyncio.ensure_future(channel.run(ECHO, ["n"], [str(i)])) for i in range(50)]
            await asyncio.sleep(0)  # written; Redis answers within a millisecond
            lag(TIMEOUT_S * 3)  # the worker's loop is stuck (a busy core), past every deadline
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await channel.close()

    assert run(scenario()) == [str(i).encode() for i in range(50)]


def test_a_late_event_loop_costs_the_limiter_nothing(server: PrivateRedis, run: Run) -> None:
    async def scenario() -> tuple[list[str], int]:
        limiter = closed_limiter(server.url)
        await limiter.start()
        try:
            principal = key(Limits(rpm=10_000, max_parallel=1000))
            assert await admit(limiter, principal) == "ok"
            pending = [asyncio.ensure_future(admit(limiter, principal)) for _ in range(64)]
            await asyncio.sleep(0)
            lag(TIMEOUT_S * 3)
            answers = list(await asyncio.gather(*pending))
            return answers, limiter.stats.redis_failures
        finally:
            await limiter.close()

    assert run(scenario()) == (["ok"] * 64, 0)


def test_one_slow_moment_of_a_healthy_redis_does_not_trip_closed_mode(server: PrivateRedis, run: Run) -> None:
    async def scenario() -> tuple[list[str], list[str], Any]:
        limiter = closed_limiter(server.url)
        await limiter.start()
        try:
            principal = key(Limits(rpm=10_000))
            assert await admit(limiter, principal) == "ok"
            sleeper = debug_sleep(server, TIMEOUT_S * 1.5)
            during = list(await asyncio.gather(*(admit(limiter, principal) for _ in range(20))))
            await asyncio.to_thread(sleeper.join)
            # At once, not after RECHECK_S: the limiter did not switch to its failure mode.
            after = [await admit(limiter, principal) for _ in range(20)]
            return during, after, limiter.stats
        finally:
            await limiter.close()

    during, after, stats = run(scenario())
    # The calls that waited on the stalled connection could not be checked in time: refused.
    assert during == ["503"] * 20
    assert after == ["ok"] * 20
    assert not stats.redis_down
    assert stats.redis_stalls >= 1 and stats.redis_failures == stats.redis_stalls


def test_a_paused_redis_trips_closed_mode_after_a_second_stall(server: PrivateRedis, run: Run) -> None:
    async def scenario() -> tuple[list[str], float, Any]:
        limiter = closed_limiter(server.url)
        await limiter.start()
        principal = key(Limits(rpm=10_000))
        try:
            assert await admit(limiter, principal) == "ok"
            server.pause()
            try:
                answers = [await admit(limiter, principal) for _ in range(2)]  # a stall each
                assert limiter.stats.redis_down
                started = time.monotonic()
                answers += [await admit(limiter, principal) for _ in range(10)]
                shed_s = time.monotonic() - started
            finally:
                server.resume()
            return answers, shed_s, limiter.stats
        finally:
            await limiter.close()

    answers, shed_s, stats = run(scenario())
    assert answers == ["503"] * 12
    # Down: refused without asking Redis (and waiting for it) again. Not a speed assertion: one
    # more wait per request would take 10 * TIMEOUT_S.
    assert shed_s < 5 * TIMEOUT_S
    assert stats.redis_stalls == 1 and stats.redis_down


def test_a_stopped_redis_trips_closed_mode_at_once(server: PrivateRedis, run: Run) -> None:
    async def scenario() -> tuple[str, Any]:
        limiter = closed_limiter(server.url)
        await limiter.start()
        try:
            principal = key(Limits(rpm=10_000))
            assert await admit(limiter, principal) == "ok"
            server.stop()
            return await admit(limiter, principal), limiter.stats
        finally:
            await limiter.close()

    answer, stats = run(scenario())
    assert answer == "503"
    assert stats.redis_down and stats.redis_stalls == 0
