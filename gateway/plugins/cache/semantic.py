"""The semantic cache: a chat request whose last user message means the same as a cached one's.

    - name: semantic_cache
      config:
        embedding_model: text-embed   # a model this gateway serves; called through the gateway itself
        threshold: 0.9                # cosine similarity for a hit
        ttl_s: 3600
        max_entries: 500              # per scope (team), per worker

Everything but the last user message must match exactly (model, parameters, system prompt and
earlier turns: they form the scope, with the team unless `shared`); only the last message is
compared by meaning. Its embedding comes from `embedding_model` through the gateway's own
`/v1/embeddings`, in process, so it is routed, limited and recorded like any other call.
Entries live in this worker's memory; a linear scan is fine at a few hundred per scope (how it was
evaluated: docs/plugins.md, "The semantic cache"). An embedding that fails is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import math
import operator
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import Field

from gateway.core.errors import GatewayError
from gateway.core.fingerprint import IGNORED
from gateway.core.types import Endpoint
from gateway.pipeline.context import RequestContext
from gateway.plugins.base import Answer, Before, Plugin, PluginConfig, Services
from gateway.plugins.cache.exact import MISS, complete, entry_cost, hit
from gateway.plugins.cache.keys import directives, scope

log = logging.getLogger("gateway.plugins")


class SemanticConfig(PluginConfig):
    embedding_model: str = Field(min_length=1)
    threshold: float = Field(default=0.9, gt=0, le=1)
    ttl_s: float = Field(default=3600.0, gt=0)
    max_entries: int = Field(default=500, ge=1)
    shared: bool = False


@dataclass(slots=True)
class Entry:
    vector: list[float]
    value: dict[str, Any]
    expires: float


def normalised(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def similarity(a: list[float], b: list[float]) -> float:
    return sum(map(operator.mul, a, b))


def last_user_text(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    last = messages[-1]
    content = last.get("content")
    if last.get("role") != "user" or not isinstance(content, str) or not content.strip():
        return None
    return content


class Index:
    """Entries per scope, oldest dropped first past `max_entries`."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.scopes: dict[str, deque[Entry]] = {}

    def best(self, where: str, vector: list[float], now: float) -> tuple[float, Entry | None]:
        entries = self.scopes.get(where)
        if not entries:
            return 0.0, None
        best, found = -1.0, None
        for entry in entries:
            if entry.expires > now:
                score = similarity(vector, entry.vector)
                if score > best:
                    best, found = score, entry
        return best, found

    def add(self, where: str, entry: Entry, now: float) -> None:
        entries = self.scopes.setdefault(where, deque())
        while entries and entries[0].expires <= now:
            entries.popleft()
        entries.append(entry)
        while len(entries) > self.max_entries:
            entries.popleft()


class SemanticCache(Plugin):
    name = "semantic_cache"
    Config = SemanticConfig
    config: SemanticConfig

    def __init__(self, config: dict[str, Any], services: Services) -> None:
        super().__init__(config, services)
        self.index = Index(self.config.max_entries)

    def _scope(self, ctx: RequestContext) -> str:
        body = {k: v for k, v in ctx.body.items() if k not in IGNORED and k != "messages"}
        material = {"model": ctx.model, "scope": scope(ctx, self.config.shared), "body": body,
                    "history": ctx.body["messages"][:-1]}
        return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()

    async def before(self, ctx: RequestContext) -> Before | None:
        if ctx.endpoint is not Endpoint.CHAT or self.services.embed is None:
            return None
        # Where a guardrail masks in logs only, the masked text: the embedding call is logged like any other.
        text = last_user_text(ctx.redacted_body if ctx.redacted_body is not None else ctx.body)
        wanted = directives(ctx)
        if text is None or not (wanted.lookup or wanted.store):
            return None
        try:
            vectors = await self.services.embed(self.config.embedding_model, [text])
        except GatewayError as exc:
            log.warning("semantic cache: the embedding call failed (%s); a miss", exc.code or exc.status)
            return None
        vector = normalised(vectors[0])
        where = self._scope(ctx)
        if ctx.plugins is not None:
            ctx.plugins.state[self.id] = (where, vector)
        if not wanted.lookup:
            return None
        now = self.services.clock()
        score, entry = self.index.best(where, vector, now)
        if entry is None or score < self.config.threshold:
            return MISS
        return hit(entry.value, now, {"x-gateway-cache-similarity": f"{score:.3f}"})

    async def after(self, ctx: RequestContext, answer: Answer) -> None:
        found = ctx.plugins.state.get(self.id) if ctx.plugins is not None else None
        if found is None or ctx.cache_hit or not directives(ctx).store or not complete(answer):
            return
        where, vector = found
        cost = entry_cost(ctx, self.services)
        now = self.services.clock()
        value = {"body": answer.body, "cost": str(cost) if cost is not None else None, "at": now}
        self.index.add(where, Entry(vector, value, now + self.config.ttl_s), now)
