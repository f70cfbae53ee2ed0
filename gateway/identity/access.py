"""The key store and what reads it on the hot path (cache, change announcements), built once per worker."""

from __future__ import annotations

import logging

from gateway.config.settings import Settings
from gateway.identity.invalidation import Invalidation, PollInvalidation, RedisInvalidation
from gateway.identity.keycache import KeyCache
from gateway.identity.store import open_store
from gateway.identity.store.sql import SqlStore

log = logging.getLogger("gateway")


class Access:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: SqlStore | None = None
        self._cache: KeyCache | None = None
        self._invalidation: Invalidation | None = None

    async def start(self) -> None:
        settings = self.settings
        try:
            store = await open_store(settings)
        except Exception as exc:
            log.error("cannot open the key store: %s", exc)
            raise
        invalidation: Invalidation
        if settings.redis_url is not None:
            invalidation = RedisInvalidation(settings.redis_url.get_secret_value(), settings.redis_prefix,
                                             cluster=settings.redis_cluster)  # fmt: skip
        else:
            invalidation = PollInvalidation(store)
        cache = KeyCache(store, settings.auth_cache_ttl_s, trusted=lambda: invalidation.healthy)
        try:
            await invalidation.start(cache)
        except BaseException:
            await store.close()
            raise
        self._store, self._cache, self._invalidation = store, cache, invalidation

    @property
    def started(self) -> bool:
        return self._store is not None

    @property
    def store(self) -> SqlStore:
        assert self._store is not None, "Access.start() has not run"
        return self._store

    @property
    def cache(self) -> KeyCache:
        assert self._cache is not None, "Access.start() has not run"
        return self._cache

    @property
    def changes_live(self) -> bool:
        """Whether announcements of key changes are arriving (else cache entries live one second)."""
        return self._invalidation is not None and self._invalidation.healthy

    async def changed(self, kind: str, target_id: str) -> None:
        """A key or team changed: forget it here at once, and tell the other workers and replicas."""
        self.cache.invalidate(kind, target_id)
        assert self._invalidation is not None
        await self._invalidation.publish(kind, target_id)

    async def close(self) -> None:
        if self._invalidation is not None:
            await self._invalidation.close()
        if self._store is not None:
            await self._store.close()
        self._store = self._cache = self._invalidation = None
