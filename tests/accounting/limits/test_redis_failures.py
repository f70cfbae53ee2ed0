"""Redis going away, hanging, restarting or forgetting its scripts, on private redis-servers.

The limiter answers every request anyway, as its failure mode says: 503 when closed, per-process
limits when open; and it shares limits through Redis again once Redis is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.accounting.limits import Limiter, LimiterOptions
from gateway.accounting.limits.memory import MemoryBackend
from gateway.accounting.limits.redis_backend import RedisBackend
from gateway.core.errors import RateLimited, ServiceUnavailable
from gateway.core.types import Limits
from tests.accounting.limits.conftest import FakeClock, admit_held, key, request, settle_held
from tests.accounting.limits.servers import PrivateCluster, PrivateRedis
from tests.procs import free_port

# Short enough for a quick test, long enough for a busy shared machine not to look like an outage.
TIMEOUT_S = 1.0
# Catches a hang; the limiter's own bound is TIMEOUT_S. Not a speed assertion.
HANG_S = 10


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()


def _limiter(url: str, mode: str, clock: FakeClock) -> Limiter:
    backend = RedisBackend(url, timeout_s=TIMEOUT_S)
    return Limiter(
        backend,
        options=LimiterOptions(prefix="lfail", failure_mode=mode, recheck_s=0.05),  # type: ignore[arg-type]
        fallback=MemoryBackend() if mode == "open" else None,
        clock=clock,
    )


@pytest.fixture
async def limiters(private_redis: PrivateRedis, clock: FakeClock) -> AsyncIterator[dict[str, Limiter]]:
    made = {mode: _limiter(private_redis.url, mode, clock) for mode in ("closed", "open")}
    yield made
    for limiter in made.values():
        await limiter.close()


async def _admit(limiter: Limiter, principal: object) -> str:
    ctx = request(principal)  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(admit_held(limiter, ctx), HANG_S)
    except ServiceUnavailable as error:
        assert (error.status, error.code) == (503, "limits_unavailable")
        return "503"
    except RateLimited:
        return "429"
    await settle_held(limiter, ctx)
    return "ok"


async def test_scripts_are_loaded_once_called_by_sha_and_reloaded_after_script_flush(
    private_redis: PrivateRedis, limiters: dict[str, Limiter]
) -> None:
    limiter = limiters["closed"]
    principal = key(Limits(rpm=1000, max_parallel=10))
    await limiter.start()
    for _ in range(3):
        assert await _admit(limiter, principal) == "ok"
    with private_redis.client() as client:
        client.script_flush()
    for _ in range(3):
        assert await _admit(limiter, principal) == "ok"
    with private_redis.client() as client:
        stats = client.info("commandstats")
    assert "cmdstat_eval" not in stats  # the script text is never sent with a call
    # The three scripts at start; after the flush, admit and settle met NOSCRIPT once each and
    # were loaded again (nothing was held long enough for a lease renewal).
    assert stats["cmdstat_script|load"]["calls"] == 5
    assert stats["cmdstat_evalsha"]["failed_calls"] == 2
    assert stats["cmdstat_evalsha"]["calls"] == 6 + 6 + 2  # admits, settles, the two refused by NOSCRIPT
    assert limiter.stats.redis_failures == 0


async def test_concurrent_calls_after_script_flush_all_succeed(
    private_redis: PrivateRedis, limiters: dict[str, Limiter]
) -> None:
    limiter = limiters["closed"]
    principal = key(Limits(rpm=1000, max_parallel=100))
    await limiter.start()
    with private_redis.client() as client:
        client.script_flush()
    answers = await asyncio.gather(*(_admit(limiter, principal) for _ in range(20)))
    assert answers == ["ok"] * 20
    assert limiter.stats.redis_failures == 0


@pytest.mark.parametrize("mode", ["closed", "open"])
async def test_redis_down_then_back(private_redis: PrivateRedis, limiters: dict[str, Limiter], mode: str) -> None:
    limiter = limiters[mode]
    principal = key(Limits(rpm=2))
    assert [await _admit(limiter, principal) for _ in range(3)] == ["ok", "ok", "429"]

    private_redis.stop()
    answers = [await _admit(limiter, principal) for _ in range(3)]
    if mode == "closed":
        assert answers == ["503", "503", "503"]
        assert limiter.stats.unavailable_refusals == 3
    else:
        # The same limits, per process, from a fresh start.
        assert answers == ["ok", "ok", "429"]
        assert limiter.stats.fallback_admissions == 3
    assert limiter.stats.redis_down
    assert limiter.stats.redis_failures >= 1

    private_redis.start()  # empty: a restarted Redis without persistence, and without our scripts
    await asyncio.sleep(0.06)  # past recheck_s, so the next request asks Redis again
    assert [await _admit(limiter, principal) for _ in range(3)] == ["ok", "ok", "429"]
    assert not limiter.stats.redis_down


@pytest.mark.parametrize("mode", ["closed", "open"])
async def test_a_hung_redis_costs_a_bounded_wait_not_a_hang(
    private_redis: PrivateRedis, limiters: dict[str, Limiter], mode: str
) -> None:
    limiter = limiters[mode]
    principal = key(Limits(rpm=100))
    assert await _admit(limiter, principal) == "ok"
    private_redis.pause()
    try:
        answer = await _admit(limiter, principal)
    finally:
        private_redis.resume()
    assert answer == ("503" if mode == "closed" else "ok")
    assert limiter.stats.redis_failures >= 1


async def test_a_settle_that_cannot_reach_redis_is_counted_not_raised(
    private_redis: PrivateRedis, limiters: dict[str, Limiter]
) -> None:
    limiter = limiters["closed"]
    ctx = request(key(Limits(max_parallel=5)))
    await admit_held(limiter, ctx)
    private_redis.stop()
    await asyncio.wait_for(settle_held(limiter, ctx), HANG_S)
    assert limiter.stats.settle_failures == 1


async def test_spend_is_unknown_not_zero_while_redis_is_down(clock: FakeClock) -> None:
    limiter = _limiter(f"redis://127.0.0.1:{free_port()}/0", "open", clock)
    assert await limiter.current("key", "k", Limits(budget_usd=Decimal(1))) is None
    await limiter.close()


async def test_nothing_listening_at_start_is_logged_not_fatal(clock: FakeClock) -> None:
    limiter = _limiter(f"redis://127.0.0.1:{free_port()}/0", "closed", clock)
    await limiter.start()
    assert limiter.stats.redis_down
    assert await _admit(limiter, key(Limits(rpm=1))) == "503"
    assert await _admit(limiter, key()) == "ok"  # a request no limit applies to never needs Redis
    await limiter.close()


async def test_the_log_says_redis_is_down_once_and_never_shows_the_url(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cret-redis-password"
    limiter = _limiter(f"redis://:{secret}@127.0.0.1:{free_port()}/0", "open", clock)
    with caplog.at_level("WARNING", logger="gateway.limits"):
        for _ in range(3):
            assert await _admit(limiter, key(Limits(rpm=10))) == "ok"
    await limiter.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "gateway.limits"]
    assert len(warnings) == 1
    assert "Redis is unavailable" in warnings[0] and "per process" in warnings[0]
    assert secret not in caplog.text


async def test_a_hung_cluster_node_is_the_failure_mode_not_a_500(
    private_cluster: PrivateCluster, clock: FakeClock
) -> None:
    """On a cluster the limiter's calls go through redis-py's cluster client, bounded by the
    limiter's own deadline; a deadline that runs out is Redis being unavailable like any other
    failure, at start and per request (it escaped as a bare TimeoutError: a failed start, a 500)."""
    principal = key(Limits(rpm=10), key_id="hung-node")
    limiters = {mode: Limiter(RedisBackend(private_cluster.url, timeout_s=0.3, cluster=True),
                              options=LimiterOptions(prefix="lhung", failure_mode=mode, recheck_s=0.05),  # type: ignore[arg-type]
                              fallback=MemoryBackend() if mode == "open" else None, clock=clock)
                for mode in ("closed", "open")}  # fmt: skip
    node = private_cluster.master_of("{lhung:k:hung-node}")
    for limiter in limiters.values():
        await limiter.start()
        assert await _admit(limiter, principal) == "ok"
    node.pause()
    try:
        assert await _admit(limiters["closed"], principal) == "503"
        assert await _admit(limiters["open"], principal) == "ok"  # per process
        # Started while the node hangs: logged and counted, not fatal.
        late = Limiter(RedisBackend(node.url, timeout_s=0.3, cluster=True), options=LimiterOptions(prefix="lhung"),
                       clock=clock)  # fmt: skip
        await late.start()
        assert late.stats.redis_down
        await late.close()
    finally:
        node.resume()
    for limiter in limiters.values():
        await limiter.close()
