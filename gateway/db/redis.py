"""Opening the shared Redis for the response cache, alert claims and key-change announcements.

With `redis_cluster` the client is redis-py's cluster client: it routes each key to the master of
its slot and follows a failover (MOVED, a node gone) by learning the slots again. A plain client
pointed at one node of a cluster would answer MOVED for two keys in three. The limiter opens its
own connections (gateway/accounting/limits/redis_backend.py), with tighter timeouts.

Pub/sub is not keyed: a PUBLISH on any node of a cluster reaches the subscribers of every node,
so a subscriber may listen on any live node; `node_urls` lists them for one to pick.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from gateway.config.settings import Settings

# What "Redis failed" looks like from redis-py: its own errors, sockets', and the cluster client's
# (an unreachable cluster or an uncovered slot raise RedisClusterException, not a RedisError).
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)


def open_redis(settings: Settings, **options: Any) -> Redis | RedisCluster:
    assert settings.redis_url is not None
    url = settings.redis_url.get_secret_value()
    if settings.redis_cluster:
        return RedisCluster.from_url(url, **options)
    return Redis.from_url(url, **options)


async def node_urls(client: Redis | RedisCluster, url: str) -> list[str]:
    """The URL of every node the cluster holds healthy (masters and replicas) as `url` with
    that node's address, the URL's own node first; just `url` for a single Redis."""
    if not isinstance(client, RedisCluster):
        return [url]
    nodes: dict[str, dict[str, Any]] = await client.cluster_nodes()
    parts = urlsplit(url)
    own = parts.netloc.rpartition("@")[2]
    healthy = [address for address, node in nodes.items()
               if "fail" not in str(node.get("flags", "")) and node.get("connected", True)]  # fmt: skip
    ordered = sorted(healthy, key=lambda address: address != own)
    userinfo = parts.netloc.rpartition("@")[0]
    return [urlunsplit(parts._replace(netloc=f"{userinfo}@{a}" if userinfo else a)) for a in ordered] or [url]
