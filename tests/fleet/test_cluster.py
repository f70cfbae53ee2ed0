"""The gateway on a real Redis Cluster: three masters, each with a replica, started by the test.

Two gateway processes share it (and a private PostgreSQL database), one in each failure mode.
Limits, budgets, the exact response cache and key revocation work on the cluster; a master that
dies under load (SIGKILL; its replica takes over) gives each gateway its failure mode (closed:
503 `limits_unavailable`; open: per-process limits) for at most the failover plus MARGIN_S, never
a 500, and the counters are right afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from redis.asyncio.cluster import RedisCluster

from gateway.accounting.limits.redis_backend import CLUSTER_RECHECK_S
from gateway.accounting.limits.scopes import scope_base
from gateway.identity.invalidation import RedisInvalidation
from gateway.plugins.cache.stores import RedisStore
from tests.accounting.limits.servers import PrivateCluster, PrivateRedis
from tests.dbs import create_pg_database, drop_pg_database, redis_prefix
from tests.fleet.calls import COST, MODEL, PRICE, AdminApi, Figures, Outcome, call
from tests.procs import FakeUpstream, Gateway, deployment, free_port

# A silent master is failed after a second (redis' default is 15 s; the failover scales with it).
NODE_TIMEOUT_MS = 1000
# How long the closed gateway's 503s may outlast the replica's takeover: one cluster recheck, and
# the rest for a request caught mid-takeover on this shared, busy machine.
MARGIN_S = CLUSTER_RECHECK_S + 0.4
# LIMITS_REDIS_TIMEOUT_S: the default 0.25 s is shorter than this shared machine's scheduling
# delays under load (a slow answer is a failure, and closed mode answers 503). A dead master
# refuses connections at once, so the failover does not wait on it.
REDIS_TIMEOUT_S = 1.0


@dataclass
class ClusterFleet:
    cluster: PrivateCluster
    gateways: dict[str, Gateway]  # failure mode -> gateway
    dsn: str
    prefix: str

    def admin(self, mode: str = "closed") -> AdminApi:
        return AdminApi(self.gateways[mode].base)

    def master_of_key(self, key_id: str) -> PrivateRedis:
        return self.cluster.master_of(scope_base(self.prefix, "key", key_id))

    def client(self, mode: str, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.gateways[mode].url, api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def on_cluster(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterFleet]:
    tmp = tmp_path_factory.mktemp("on-cluster")
    cluster = PrivateCluster(tmp, replicas=1, node_timeout_ms=NODE_TIMEOUT_MS)
    dsn = create_pg_database()
    prefix = redis_prefix()
    gateways: dict[str, Gateway] = {}
    try:
        models = [{"name": MODEL, "deployments": [deployment(upstream, price=PRICE)]}]
        for mode in ("closed", "open"):
            settings = {
                "redis_url": cluster.url, "redis_cluster": True, "redis_prefix": prefix, "database_url": dsn,
                "database_pool_size": 2, "limits_failure_mode": mode, "limits_redis_timeout_s": REDIS_TIMEOUT_S,
                "log_requests": False,
                "data_dir": str(tmp / f"data-{mode}"),
            }  # fmt: skip
            plugins = {"global": [{"name": "cache", "config": {"opt_in": "header"}}]}
            gateways[mode] = Gateway(tmp, models, settings=settings, plugins=plugins, wait=False,
                                     log=tmp / f"gateway-{mode}.log")  # fmt: skip
        for gateway in gateways.values():
            gateway.wait_ready()
        yield ClusterFleet(cluster, gateways, dsn, prefix)
    finally:
        for gateway in gateways.values():
            gateway.close()
        cluster.stop()
        drop_pg_database(dsn)


async def test_limits_budgets_the_cache_and_revocation_work_on_a_cluster(
    on_cluster: ClusterFleet, figures: Figures
) -> None:
    modes = ("closed", "open")
    # Requests per minute and a budget, counted once for both gateways.
    capped = on_cluster.admin().create_key(rpm=5)
    clients = [on_cluster.client(mode, capped["key"]) for mode in modes]
    statuses = [(await call(clients[n % 2])).status for n in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    budgeted = on_cluster.admin().create_key(budget_usd=str(3 * COST))
    clients = [on_cluster.client(mode, budgeted["key"]) for mode in modes]
    outcomes = [await call(clients[n % 2]) for n in range(5)]
    assert [(o.status, o.code) for o in outcomes[3:]] == [(429, "insufficient_quota")] * 2
    assert on_cluster.admin().spent(budgeted["id"]) == 3 * COST

    # The exact cache: what one gateway stored, the other finds, whichever master holds it.
    cached = on_cluster.admin().create_key()
    clients = [on_cluster.client(mode, cached["key"]) for mode in modes]
    use = {"extra_headers": {"x-gateway-cache": "use"}}
    prompts = [[{"role": "user", "content": f"cluster cache {n}"}] for n in range(9)]
    stored = [await clients[0].chat.completions.with_raw_response.create(model=MODEL, messages=m, **use)
              for m in prompts]  # type: ignore[arg-type]  # fmt: skip
    found = [await clients[1].chat.completions.with_raw_response.create(model=MODEL, messages=m, **use)
             for m in prompts]  # type: ignore[arg-type]  # fmt: skip
    assert [r.headers["x-gateway-cache"] for r in stored] == ["miss"] * len(prompts)
    assert [r.headers["x-gateway-cache"] for r in found] == ["hit"] * len(prompts)
    holders = set()
    for node in on_cluster.cluster.running():
        with node.client() as client:
            if client.keys(f"{on_cluster.prefix}:cache:v1:*"):
                holders.add(node.port)
    assert len(holders) >= 2  # the entries are spread over the masters' slots: not one node's luck

    # Revocation through one gateway reaches the other through the cluster's pub/sub.
    revoked = on_cluster.admin().create_key()
    clients = [on_cluster.client(mode, revoked["key"]) for mode in modes]
    assert [(await call(c)).status for c in clients] == [200, 200]
    started = time.monotonic()
    on_cluster.admin("closed").revoke(revoked["id"])
    while (await call(clients[1])).status == 200:
        assert time.monotonic() - started < 1.0, "the other gateway still accepts the revoked key"
        await asyncio.sleep(0.01)
    figures.note(
        "cluster revocation",
        f"a revocation through one gateway reached the other in {time.monotonic() - started:.3f} s",
    )
    for client in clients:
        await client.close()


LOAD_CALLERS = 6


async def test_a_master_failing_over_under_load_gives_the_failure_mode_then_right_counters(
    on_cluster: ClusterFleet, figures: Figures
) -> None:
    cluster = on_cluster.cluster
    # Keys whose counters live on the same master, one per gateway.
    target = on_cluster.master_of_key(on_cluster.admin().create_key()["id"])
    keys: dict[str, dict[str, Any]] = {}
    while len(keys) < 2:
        key = on_cluster.admin().create_key(budget_usd="1000", rpm=100_000)
        if on_cluster.master_of_key(key["id"]) is target:
            keys["closed" if not keys else "open"] = key
    outcomes: dict[str, list[Outcome]] = {"closed": [], "open": []}
    stop = asyncio.Event()

    async def caller(mode: str) -> None:
        client = on_cluster.client(mode, keys[mode]["key"])
        while not stop.is_set():
            outcomes[mode].append(await call(client))
            await asyncio.sleep(0.01)
        await client.close()

    callers = [asyncio.create_task(caller(mode)) for mode in ("closed", "open") for _ in range(LOAD_CALLERS)]
    await asyncio.sleep(1.5)
    killed_at = time.monotonic()
    target.kill()
    promoted = await asyncio.to_thread(cluster.wait_promoted, target, scope_base(on_cluster.prefix, "key",
                                                                               keys["closed"]["id"]))  # fmt: skip
    failover_s = time.monotonic() - killed_at
    await asyncio.sleep(4.0)
    stop.set()
    await asyncio.gather(*callers)

    closed, opened = outcomes["closed"], outcomes["open"]
    seen = {mode: Counter((o.status, o.code) for o in outcomes[mode]) for mode in outcomes}
    refused = [o for o in closed if o.status == 503]
    first = (min(o.sent for o in refused) - killed_at) if refused else 0.0
    window = (max(o.done for o in refused) - killed_at) if refused else 0.0
    figures.note("cluster failover",
                 f"master {target.port} killed; replica {promoted.port} serving its slots after {failover_s:.2f} s; "
                 f"closed gateway: {dict(seen['closed'])}, 503s from {first:.2f} to {window:.2f} s after the kill "
                 f"({window - failover_s:+.2f} s past the takeover, bound +{MARGIN_S:.2f} s); "
                 f"open gateway: {dict(seen['open'])}")  # fmt: skip
    assert set(seen["closed"]) <= {(200, None), (503, "limits_unavailable")}
    assert set(seen["open"]) == {(200, None)}  # per-process limits, far from these keys' caps
    assert refused, "the closed gateway never noticed the master was gone: nothing was tested"
    # At most the failover, plus a margin: after a failure the cluster limiter asks again within
    # CLUSTER_RECHECK_S, and a call that meets the old slot map learns the new one and is tried
    # again at once; a request in flight at the takeover, and this busy machine's scheduling,
    # take up to the rest of MARGIN_S. (Before: two LIMITS_REDIS_RECHECK_S, 1.6 s past the takeover.)
    bound = failover_s + MARGIN_S
    assert window <= bound
    assert all(o.status == 200 for o in closed + opened if o.sent > killed_at + bound)

    # Counters afterwards: every request the closed gateway served went through the cluster, so its
    # key's spend counter equals its ledger rows' cost; and a fresh budget on the promoted master
    # holds exactly.
    served = sum(1 for o in closed if o.status == 200)
    assert on_cluster.admin().spent(keys["closed"]["id"]) == served * COST
    fresh = on_cluster.admin().create_key(budget_usd=str(4 * COST))
    clients = [on_cluster.client(mode, fresh["key"]) for mode in ("closed", "open")]
    statuses = [(await call(clients[n % 2])).status for n in range(6)]
    assert statuses == [200] * 4 + [429] * 2
    assert on_cluster.admin().spent(fresh["id"]) == 4 * COST

    target.start()  # the old master comes back as its successor's replica
    await asyncio.to_thread(cluster.wait_synced)
    with promoted.client() as client:
        assert client.info("replication")["connected_slaves"] == 1


async def test_a_cluster_that_cannot_be_reached_is_a_cache_miss_and_a_logged_announcement() -> None:
    """redis-py's cluster client reports an unreachable cluster with exceptions outside RedisError
    (RedisClusterException): the cache and key-change announcements must treat them like any
    Redis failure, never fail the request or the admin call."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    client = RedisCluster.from_url(url, socket_connect_timeout=0.5)
    store = RedisStore(client, "unreachable")
    assert await store.get("k") is None
    await store.set("k", b"v", 1.0)
    await client.aclose()
    invalidation = RedisInvalidation(url, "unreachable", cluster=True)
    await invalidation.publish("key", "key_1")
    await invalidation.close()
