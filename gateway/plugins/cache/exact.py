"""The exact-match response cache.

    - name: cache
      config:
        ttl_s: 3600          # unless the request says ttl=N (capped by max_ttl_s)
        opt_in: always       # always | header: only requests sending x-gateway-cache: use (or ttl=N)
        shared: false        # true: one cache for every team

Answers are stored in one normalised form, OpenAI's non-stream body, so a cached answer is
replayed to a streaming client as chunks and a streamed answer serves a later non-stream call.
A hit is `x-gateway-cache: hit` (with `x-gateway-cache-age`); the ledger row has `cache_hit`,
no tokens and cost 0, and the cost the hit saved (the stored answer's), all returned to the proxy
as a `Before` that it places on the request's record.
Only complete answers are stored: a stream that failed or was cut short is not.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import orjson
from pydantic import Field

from gateway.core.types import Endpoint
from gateway.pipeline.context import RequestContext
from gateway.plugins.base import Answer, Before, Plugin, PluginConfig, Services
from gateway.plugins.cache.keys import HEADER, Directives, cache_key, directives
from gateway.plugins.cache.stores import CacheStore, MemoryStore, RedisStore

CACHEABLE_FINISH = frozenset({"stop", "length", "tool_calls", None})
BYPASS = Before(headers={HEADER: "bypass"})
MISS = Before(headers={HEADER: "miss"})


class CacheConfig(PluginConfig):
    ttl_s: float = Field(default=3600.0, gt=0)
    max_ttl_s: float = Field(default=86_400.0, gt=0)
    opt_in: Literal["always", "header"] = "always"
    shared: bool = False
    endpoints: list[Endpoint] = [Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS]
    # The in-process store (no redis_url): entries kept, least recently used dropped first.
    max_entries: int = Field(default=10_000, ge=1)
    max_entry_bytes: int = Field(default=1_000_000, ge=1)


def entry_cost(ctx: RequestContext, services: Services) -> Decimal | None:
    """What the answer cost: a stream's, priced when it finished (`ctx.outcome`); a unary answer's,
    before it is sent, from its usage."""
    if ctx.outcome is not None and ctx.outcome.cost_usd is not None:
        return ctx.outcome.cost_usd
    if ctx.deployment is not None and ctx.usage is not None:
        return services.prices.cost(ctx.deployment, ctx.model, ctx.usage)
    return None


def hit(entry: dict[str, Any], now: float, extra: dict[str, str] | None = None) -> Before:
    """The stored answer, served from the cache: no tokens used, nothing owed, the saving noted."""
    cost = entry.get("cost")
    age = str(max(0, int(now - float(entry.get("at", now)))))
    answer = Answer(entry["body"], headers={HEADER: "hit", "x-gateway-cache-age": age, **(extra or {})})
    return Before(answer=answer, cache_hit=True, saved_usd=Decimal(cost) if cost is not None else None)


def complete(answer: Answer) -> bool:
    choices = answer.body.get("choices")
    if choices is None:  # embeddings
        return isinstance(answer.body.get("data"), list)
    return bool(choices) and all(c.get("finish_reason") in CACHEABLE_FINISH for c in choices)


class ResponseCache(Plugin):
    name = "cache"
    Config = CacheConfig
    config: CacheConfig

    def __init__(self, config: dict[str, Any], services: Services) -> None:
        super().__init__(config, services)
        self.store: CacheStore
        if services.redis is not None:
            self.store = RedisStore(services.redis, services.settings.redis_prefix)
        else:
            self.store = MemoryStore(self.config.max_entries, services.clock)

    def _applies(self, ctx: RequestContext, wanted: Directives) -> bool:
        if ctx.endpoint not in self.config.endpoints:
            return False
        return self.config.opt_in == "always" or wanted.opted_in

    async def before(self, ctx: RequestContext) -> Before | None:
        wanted = directives(ctx)
        if not self._applies(ctx, wanted):
            return None
        if not wanted.lookup:
            return BYPASS
        raw = await self.store.get(cache_key(ctx, self.config.shared))
        self._count(ctx, raw is not None)
        if raw is None:
            return MISS
        return hit(orjson.loads(raw), self.services.clock())

    async def after(self, ctx: RequestContext, answer: Answer) -> None:
        wanted = directives(ctx)
        if ctx.cache_hit or not wanted.store or not self._applies(ctx, wanted) or not complete(answer):
            return
        cost = entry_cost(ctx, self.services)
        value = orjson.dumps({"body": answer.body, "cost": str(cost) if cost is not None else None,
                              "at": self.services.clock()})
        if len(value) > self.config.max_entry_bytes:
            return
        ttl = min(wanted.ttl_s or self.config.ttl_s, self.config.max_ttl_s)
        key = cache_key(ctx, self.config.shared)
        await self.store.set(key, value, ttl)
        if isinstance(self.store, RedisStore):
            owners = [f"user:{ctx.user}"] if ctx.user else []
            if ctx.principal is not None and ctx.principal.key_id:
                owners.append(f"key:{ctx.principal.key_id}")
            if owners:
                await self.store.attribute(key, owners, ttl)

    def _count(self, ctx: RequestContext, found: bool) -> None:
        metrics, labels = self.services.metrics, self.services.labels
        if metrics is not None and labels is not None:
            metrics.cache_lookup(labels.model(ctx.model), found)
