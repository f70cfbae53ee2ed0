"""The limiter's Redis clients retry the asyncio way (pyproject's filterwarnings makes the old warning an error)."""

from __future__ import annotations

import warnings

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry

from gateway.accounting.limits.redis_backend import connect


async def test_clients_get_an_asyncio_retry_and_no_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        single = connect("redis://127.0.0.1:6379/0", cluster=False, timeout_s=0.25)
        cluster = connect("redis://127.0.0.1:7000/0", cluster=True, timeout_s=0.25)
    assert not [w for w in caught if "redis.retry.Retry" in str(w.message)]
    assert isinstance(single, Redis) and isinstance(single.get_retry(), Retry)
    assert isinstance(cluster, RedisCluster) and isinstance(cluster.retry, Retry)
    await single.aclose()
    await cluster.aclose()
