"""The limiter on a Redis Cluster whose master fails: it notices the replica's takeover at once.

Two parts make the failure mode end with the takeover, not a second or two after it: a call that
meets a stale slot map (a node gone, MOVED, CLUSTERDOWN) learns the slots again and is tried once
more within its deadline; and on a cluster the limiter asks again `CLUSTER_RECHECK_S` after a
failure, not `LIMITS_REDIS_RECHECK_S`. The fleet test (tests/fleet/test_cluster.py) measures the
whole window under load through two gateways.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from gateway.accounting.limits import build_limiter
from gateway.accounting.limits.checks import Check, Kind, Unavailable
from gateway.accounting.limits.redis_backend import CLUSTER_RECHECK_S, RedisBackend
from gateway.accounting.pricing import PriceBook
from gateway.config.file import Config
from gateway.config.settings import Settings
from gateway.core.errors import ServiceUnavailable
from gateway.core.types import Limits
from tests.accounting.limits.conftest import FakeClock, admit_held, key, request
from tests.accounting.limits.servers import PrivateCluster

# A silent master is failed after a second, so the takeover comes within seconds.
NODE_TIMEOUT_MS = 1000
TIMEOUT_S = 1.0  # the limiter's deadline per call; generous for this busy machine


@pytest.fixture(scope="module")
def replicated_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(tmp_path_factory.mktemp("failover"), replicas=1, node_timeout_ms=NODE_TIMEOUT_MS)
    yield cluster
    cluster.stop()


def test_on_a_cluster_the_limiter_asks_again_within_the_cluster_recheck() -> None:
    url = SecretStr("redis://127.0.0.1:7000/0")
    on_cluster = build_limiter(Config(models=[]), Settings(redis_url=url, redis_cluster=True), PriceBook({}))
    single = build_limiter(Config(models=[]), Settings(redis_url=url), PriceBook({}))
    slower = build_limiter(Config(models=[]), Settings(redis_url=url, redis_cluster=True, limits_redis_recheck_s=0.05),
                           PriceBook({}))  # fmt: skip
    assert on_cluster.options.recheck_s == CLUSTER_RECHECK_S
    assert single.options.recheck_s == 1.0  # the single Redis keeps its setting
    assert slower.options.recheck_s == 0.05  # a shorter setting stands


async def test_a_hung_master_back_within_a_moment_is_asked_again_within_the_recheck(
    replicated_cluster: PrivateCluster,
) -> None:
    """A master that stops answering for one call's deadline, then answers again: the closed
    limiter refuses that call with 503 and admits the next request made CLUSTER_RECHECK_S later
    (with the single-Redis recheck of a second it would still refuse)."""
    settings = Settings(redis_url=SecretStr(replicated_cluster.url), redis_cluster=True, redis_prefix="lrecheck",
                        limits_redis_timeout_s=0.3)  # fmt: skip
    limiter = build_limiter(Config(models=[]), settings, PriceBook({}), clock=FakeClock())
    principal = key(Limits(rpm=1000), key_id="recheck")
    await limiter.start()
    try:
        await admit_held(limiter, request(principal))
        node = replicated_cluster.master_of("{lrecheck:k:recheck}")
        node.pause()
        try:
            with pytest.raises(ServiceUnavailable):
                await admit_held(limiter, request(principal))
        finally:
            node.resume()
        failed_at = time.monotonic()
        await asyncio.sleep(2 * CLUSTER_RECHECK_S)
        assert time.monotonic() - failed_at < 0.9, "this machine stalled; the check below would prove nothing"
        await admit_held(limiter, request(principal))  # asked Redis again: no 503
        assert not limiter.stats.redis_down
    finally:
        await limiter.close()


async def test_calls_after_a_master_failed_over_are_answered_on_the_first_try(
    replicated_cluster: PrivateCluster,
) -> None:
    """Calls fail while the master is gone (each asking for the slots again); once its replica
    has taken over, every call is answered at its first try, never refused for a slot map
    learnt before the takeover."""
    backend = RedisBackend(replicated_cluster.url, timeout_s=TIMEOUT_S, cluster=True)
    await backend.start()
    base = "{lfailover:k:one}"
    check = Check(Kind.RPM, base + ":rpm", 1_000_000, 1)
    target = replicated_cluster.master_of(base)
    now_ms = int(time.time() * 1000)
    try:
        assert (await backend.admit([check], now_ms, "m0", 10_000))[0].ok
        target.kill()
        promoted = asyncio.ensure_future(asyncio.to_thread(replicated_cluster.wait_promoted, target, base))
        failures = 0
        while not promoted.done():
            try:
                await backend.admit([check], now_ms, "m", 10_000)
            except Unavailable:
                failures += 1
            await asyncio.sleep(0.01)
        promoted.result()
        assert failures, "no call met the missing master: nothing was tested"
        # Every call from here is answered, at once.
        answers = [(await backend.admit([check], now_ms, f"after{n}", 10_000))[0].ok for n in range(20)]
        assert answers == [True] * 20
    finally:
        await backend.close()
        target.start()  # back as the new master's replica, for the module's other tests
