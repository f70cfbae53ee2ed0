"""Where cached answers live: Redis (shared by every worker and replica) or an in-process LRU.

A cache that cannot be reached is a miss, never a failed request: Redis errors are logged (once
per outage) and the call goes on to the upstream.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from gateway.db.redis import REDIS_ERRORS
from gateway.plugins.cache import attribution

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

log = logging.getLogger("gateway.plugins")


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...


class MemoryStore:
    """Least recently used first out, past `max_entries`; entries expire by `clock`."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, value = found
        if expires <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self._entries[key] = (self.clock() + ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class RedisStore:
    """One string per answer under `<redis_prefix>:cache:v1:<key>`, expired by Redis itself."""

    def __init__(self, redis: Redis | RedisCluster, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:cache:v1:"
        self._down = False

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self.redis.get(self.prefix + key)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return None
        self._down = False
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        try:
            await self.redis.set(self.prefix + key, value, px=max(1, int(ttl_s * 1000)))
        except REDIS_ERRORS as exc:
            self._failed(exc)

    async def attribute(self, key: str, owners: list[str], ttl_s: float) -> None:
        """Note whose request stored `key` (gateway/plugins/cache/attribution.py), for export and erasure."""
        try:
            await attribution.attribute(self.redis, self.prefix.removesuffix(":cache:v1:"), key, owners,
                                        max(1, int(ttl_s * 1000)))
        except REDIS_ERRORS as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        if not self._down:
            log.warning("response cache: Redis unavailable (%s); answering from the upstream", type(exc).__name__)
        self._down = True
