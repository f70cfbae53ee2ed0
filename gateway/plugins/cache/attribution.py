"""Which cached answers came from which end user and key, so that they can be exported and purged.

An answer's cache key leaves the end user out (two users asking the same thing share it), so the
key alone cannot say whose request stored it. Beside each answer stored in Redis, the exact cache
adds its key to one set per owner, `<redis_prefix>:cache:v1:owner:<digest>`, where the digest is a
SHA-256 of `user:<id>` or `key:<id>`: the id itself is never written to Redis. A set lives as long
as the longest answer in it. The in-process cache keeps no such sets (it is one worker's memory,
answers expire within the cache's TTL).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster


def owner_set(prefix: str, owner: str) -> str:
    return f"{prefix}:cache:v1:owner:{hashlib.sha256(owner.encode()).hexdigest()}"


def entry_name(prefix: str, key: str) -> str:
    return f"{prefix}:cache:v1:{key}"


async def attribute(redis: Redis | RedisCluster, prefix: str, key: str, owners: list[str], ttl_ms: int) -> None:
    for owner in owners:
        name = owner_set(prefix, owner)
        await redis.sadd(name, key)
        # GT: never shorten the set's life below an answer already in it.
        await redis.pexpire(name, ttl_ms, gt=True)
        await redis.pexpire(name, ttl_ms, nx=True)


async def attributed(redis: Redis | RedisCluster, prefix: str, owner: str) -> list[tuple[str, bytes]]:
    """The owner's cache keys whose answers are still there, with the answers."""
    found: list[tuple[str, bytes]] = []
    for raw in await redis.smembers(owner_set(prefix, owner)):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        value = await redis.get(entry_name(prefix, key))
        if isinstance(value, bytes):
            found.append((key, value))
    return found


async def purge(redis: Redis | RedisCluster, prefix: str, owner: str) -> int:
    """Delete the owner's cached answers and its set; how many answers went."""
    name = owner_set(prefix, owner)
    deleted = 0
    for raw in await redis.smembers(name):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        deleted += int(await redis.delete(entry_name(prefix, key)))
    await redis.delete(name)
    return deleted
