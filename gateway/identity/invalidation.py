"""Telling every worker and replica that a key or team changed, so their key caches forget it.

With Redis: a pub/sub channel (`<redis_prefix>:auth:invalidate`); on a Redis Cluster the
subscriber listens on any live node (a PUBLISH reaches every node) and moves to another when its
node fails. Without Redis: each worker polls
the store's newest audit row twice a second, which also covers several workers sharing the
embedded SQLite file. The process that made a change invalidates its own cache directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

import orjson
import redis.asyncio as aioredis

from gateway.db.redis import REDIS_ERRORS, node_urls
from gateway.identity.keycache import KeyCache
from gateway.identity.store.base import Store

log = logging.getLogger("gateway.auth")

POLL_INTERVAL_S = 0.5
REDIS_TIMEOUT_S = 1.0
# A silent subscription is checked this often, so a dead connection is noticed.
HEALTH_CHECK_S = 2.0
RECONNECT_MAX_S = 5.0


class Invalidation(Protocol):
    @property
    def healthy(self) -> bool: ...

    async def start(self, cache: KeyCache) -> None: ...
    async def publish(self, kind: str, target_id: str) -> None: ...
    async def close(self) -> None: ...


class PollInvalidation:
    def __init__(self, store: Store, interval_s: float = POLL_INTERVAL_S) -> None:
        self.store = store
        self.interval_s = interval_s
        self._healthy = False
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def start(self, cache: KeyCache) -> None:
        last = await self.store.last_change()
        self._healthy = True
        self._task = asyncio.create_task(self._run(cache, last))

    async def _run(self, cache: KeyCache, last: int) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                newest = await self.store.last_change()
            except Exception as exc:  # any store failure: keep polling, trust the cache less meanwhile
                if self._healthy:
                    log.warning("key change poll failed (%s); key cache entries now live 1 s", type(exc).__name__)
                self._healthy = False
                continue
            self._healthy = True
            if newest != last:
                cache.invalidate("all")
                last = newest

    async def publish(self, kind: str, target_id: str) -> None:
        return None  # the change is in the store, where the other workers' polls will see it

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class RedisInvalidation:
    def __init__(self, url: str, prefix: str, *, cluster: bool = False) -> None:
        self.channel = f"{prefix}:auth:invalidate"
        self._url = url
        timeout_s = REDIS_TIMEOUT_S
        self._publisher: aioredis.Redis | aioredis.RedisCluster = (
            aioredis.RedisCluster.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s) if cluster
            else aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        )
        self._healthy = False
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def start(self, cache: KeyCache) -> None:
        self._task = asyncio.create_task(self._listen(cache))

    async def _listen(self, cache: KeyCache) -> None:
        delay = 0.1
        urls, turn = [self._url], 0
        while True:
            with contextlib.suppress(*REDIS_ERRORS):
                urls = await node_urls(self._publisher, self._url)  # else the nodes known last time
            # No socket timeout on the subscriber: it is idle most of the time. Health checks
            # (PING) notice a dead connection instead.
            client = aioredis.Redis.from_url(
                urls[turn % len(urls)], socket_connect_timeout=REDIS_TIMEOUT_S, health_check_interval=HEALTH_CHECK_S
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                # Whatever was announced while we were not listening is lost: forget everything.
                cache.invalidate("all")
                if not self._healthy:
                    log.info("listening for key changes on Redis")
                self._healthy = True
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=HEALTH_CHECK_S)
                    if message is not None:
                        self._apply(cache, message.get("data"))
            except REDIS_ERRORS as exc:
                if self._healthy:
                    log.warning("lost the Redis key-change subscription (%s); key cache entries now live 1 s",
                                type(exc).__name__)
                self._healthy = False
                turn += 1  # on a cluster, the next node: this one may be gone
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    @staticmethod
    def _apply(cache: KeyCache, data: object) -> None:
        try:
            event = orjson.loads(data)  # type: ignore[arg-type]
            cache.invalidate(str(event["kind"]), str(event["id"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            cache.invalidate("all")  # an announcement we cannot read still means something changed

    async def publish(self, kind: str, target_id: str) -> None:
        payload = orjson.dumps({"kind": kind, "id": target_id})
        for attempt in (1, 2):
            try:
                await self._publisher.publish(self.channel, payload)
                return
            except REDIS_ERRORS as exc:
                if attempt == 2:
                    # The change is stored. If Redis is down, the other workers' subscriptions are
                    # down too and their entries live one second; if only this publish failed,
                    # they keep stale entries until `auth_cache_ttl_s` ends them.
                    log.warning("could not announce a %s change on Redis (%s)", kind, type(exc).__name__)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(*REDIS_ERRORS):
            await self._publisher.aclose()
