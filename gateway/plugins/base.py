"""The hook interface every plugin implements, and what hooks get and give back.

A plugin overrides only the hooks it needs; the runner looks once, when the config is loaded,
at which hooks a class overrides, and never calls the others. The points on the request path:

    before(ctx)        after auth and route, before limits and the upstream: returns a `Before`
                       (the new body, its findings) or None; may refuse with a `GatewayError`, or
                       answer itself (`Before(answer=...)`: a cache hit), in which case no
                       upstream call is made. The older form (change `ctx.body` in place, return
                       an `Answer` or None) is still accepted.
    on_chunk(ctx)      a stream is starting: a `ChunkHook` that sees the text of every chunk, per
                       choice, and returns what may be sent now (it may change or hold back text)
    after(ctx, answer) the whole answer: for a unary call before it is sent (change it and set
                       `answer.changed`), for a stream once it has ended (`answer.streamed`)
    on_error(ctx)      the request failed; for recording only

Every hook sees the typed `RequestContext`: `ctx.principal` (key and team), `ctx.model`,
`ctx.body`, `ctx.endpoint`, `ctx.tags`, and writes nothing into it: what a plugin changes or finds
it returns (`Before`) or states with `decide`, and the runner hands it to the proxy, which alone
records it (the ledger row, metrics), never with the text that triggered it.

A stream's `after` and `on_error` run once the request has finished, before its reservation is
settled and its record is built: the proxy has placed how it ended on the context, as one frozen
`RequestOutcome` (`ctx.outcome`: status, error_type, cancelled, usage, cost_usd) and, for the
older form, `ctx.status` (never 0 there: 499 for a client that left, 500 when nothing else said)
beside `ctx.error_type`. Nothing runs between the proxy placing them and these hooks; the budgets
settle returns and the request's record go to the recorders, not to plugins. A unary answer's
`after` runs before the request has ended: `ctx.outcome` is None there.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from gateway.core.errors import InternalError, InvalidRequest
from gateway.core.types import GuardrailDecision
from gateway.pipeline.context import RequestContext

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from gateway.accounting.pricing import PriceBook
    from gateway.config.settings import Settings
    from gateway.observability.labels import LabelPolicy
    from gateway.observability.metrics import GatewayMetrics

# (model, texts) -> one vector per text, computed by the gateway's own /v1/embeddings.
Embedder = Callable[[str, list[str]], Awaitable[list[list[float]]]]


class PluginConfig(BaseModel):
    """Base of a plugin's `config:` model: unknown fields are an error at start-up."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Services:
    """What the app factory hands every plugin: built once, shared, never a module global."""

    settings: Settings
    prices: PriceBook
    metrics: GatewayMetrics | None = None
    labels: LabelPolicy | None = None
    # Set by the app factory once the app exists (it calls the app itself, in process).
    embed: Embedder | None = None
    # A cluster client when settings.redis_cluster (gateway/db/redis.py).
    redis: Redis | RedisCluster | None = None
    clock: Callable[[], float] = time.time


@dataclass(slots=True)
class Answer:
    """A whole answer in OpenAI's non-stream shape for the endpoint (a stream's is assembled from
    its chunks). The normalised form the cache stores and replays either way."""

    body: dict[str, Any]
    # The stream was already sent: a change has no effect on what the client got.
    streamed: bool = False
    # Set by a hook that changed `body`, so the proxy sends the new one.
    changed: bool = False
    # Extra response headers when a plugin gives the answer itself (a cache hit).
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Before:
    """What a `before` hook gives back instead of writing into the context; the runner takes it."""

    # The request body as it goes on (None: unchanged); a new dict, the one it got left as it was.
    body: dict[str, Any] | None = None
    # The plugin answers the request itself: no limits, no upstream.
    answer: Answer | None = None
    # What it found and did (for the ledger row and metrics; never the text).
    decisions: tuple[GuardrailDecision, ...] = ()
    # A masked copy of the body for logs, when the upstream gets the body as it is.
    redacted: dict[str, Any] | None = None
    # Headers the response carries (x-gateway-cache: miss).
    headers: Mapping[str, str] = field(default_factory=dict)
    # The answer came from a cache: nothing used, nothing owed, and what the stored answer cost.
    cache_hit: bool = False
    saved_usd: Decimal | None = None


class ChunkHook(Protocol):
    """One stream's text filter. `index` is the choice; text comes in order for each choice."""

    def feed(self, index: int, text: str) -> str:
        """What may be sent now of what was held plus `text`; keep the rest for later."""
        ...

    def flush(self, index: int) -> str:
        """The choice ended: everything still held, filtered."""
        ...


class Plugin:
    """Subclass and override hooks. Built once at start-up as `cls(config, services)`."""

    # The config's `name:` for built-ins; an entry point's name for third-party plugins.
    name: ClassVar[str] = ""
    Config: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, config: dict[str, Any], services: Services) -> None:
        self.config = self.Config.model_validate(config)
        self.services = services
        # The entry's `id:` (the name by default): how metrics, logs and the ledger name it.
        self.id = self.name

    async def before(self, ctx: RequestContext) -> Before | Answer | None:
        return None

    def on_chunk(self, ctx: RequestContext) -> ChunkHook | None:
        return None

    async def after(self, ctx: RequestContext, answer: Answer) -> None:
        return None

    async def on_error(self, ctx: RequestContext) -> None:
        return None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def decision(self, kind: str, action: str, *, where: str = "request", count: int = 1,
                 score: float | None = None) -> GuardrailDecision:
        return GuardrailDecision(self.id, kind, action, where, count, score)

    def decide(self, ctx: RequestContext, kind: str, action: str, *, where: str = "request",
               count: int = 1, score: float | None = None) -> None:
        """State a decision for the ledger row and metrics (never the text that caused it), from a
        hook that cannot return it (a refusal, a stream's chunks, `after`): the request's plugin
        run keeps it and hands it to the proxy."""
        decision = self.decision(kind, action, where=where, count=count, score=score)
        if ctx.plugins is not None:
            ctx.plugins.decided(decision)
        else:  # a context built by hand, with no run (a test calling a hook directly)
            ctx.guardrails.append(decision)


class Refused(InvalidRequest):
    """A guardrail turned the request away: 400, with a code naming the rule, never the text."""

    retryable = False


class PluginFailed(InternalError):
    code = "plugin_error"
    retryable = False


def overrides(plugin: Plugin, hook: str) -> bool:
    return getattr(type(plugin), hook) is not getattr(Plugin, hook)
