"""The typed context that travels down the request path, stage to stage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from gateway.config import Deployment

if TYPE_CHECKING:
    from gateway.plugins.runner import PluginRun


class Endpoint(StrEnum):
    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"


class BudgetPeriod(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


@dataclass(slots=True, frozen=True)
class Limits:
    """Caps on a key or a team; None means no cap of that kind."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: Decimal | None = None
    # None: the budget never resets. Periods are calendar-aligned in the configured time zone.
    budget_period: BudgetPeriod | None = None


NO_LIMITS = Limits()


@dataclass(slots=True, frozen=True)
class BudgetUsage:
    """One budget's state once a request settled, as the limiter knows it: metrics and alerts read it.

    `scope` is "key" or "team" and `id` the key's or team's id (never the key itself). The period
    bounds are None for a budget that never resets.
    """

    scope: str
    id: str
    spent_usd: Decimal
    budget_usd: Decimal
    period_start: datetime | None = None
    period_end: datetime | None = None


@dataclass(slots=True, frozen=True)
class Principal:
    """Who is calling: the master key, or a virtual key of a team, with the caps that apply."""

    key_id: str
    key_prefix: str
    team_id: str | None = None
    is_master: bool = False
    key_limits: Limits = NO_LIMITS
    team_limits: Limits = NO_LIMITS
    # None: every model the gateway serves.
    allowed_models: frozenset[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class GuardrailDecision:
    """What a guardrail plugin did to one request: `plugin` is its configured id, `kind` what it
    found (email, card, injection, deny, max_tokens...), `action` what it did (masked, refused,
    flagged, logged), `where` request or response; never the text itself."""

    plugin: str
    kind: str
    action: str
    where: str = "request"
    count: int = 1
    score: float | None = None


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False

    @classmethod
    def from_openai(cls, usage: dict[str, Any]) -> Usage:
        details = usage.get("prompt_tokens_details") or {}
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(details.get("cached_tokens") or 0),
        )


@dataclass(slots=True)
class RequestContext:
    request_id: str
    endpoint: Endpoint
    started: float
    principal: Principal | None = None
    body: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    stream: bool = False
    # Whether the client itself asked for the final usage chunk of a stream.
    client_wants_usage: bool = False
    deployment: Deployment | None = None
    attempts: int = 0
    status: int = 0
    error_type: str | None = None
    usage: Usage | None = None
    # None when no price is known for the deployment that served the request.
    cost_usd: Decimal | None = None
    upstream_started: float | None = None
    first_byte_at: float | None = None
    finished: float | None = None
    cancelled: bool = False
    admitted: bool = False
    # Headers every response to this request carries, e.g. the x-ratelimit-* set.
    response_headers: dict[str, str] = field(default_factory=dict)
    # What admission reserved, handed back to it at settle (gateway/limits: a `Reservation`).
    reservation: object | None = None
    # For the ledger: the client's `user` field, its x-gateway-tags, and how the answer was made.
    user: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    cache_hit: bool = False
    # Set by the router when a fallback group, not the group of the model asked for, served it.
    fallback: bool = False
    # The deployment ids the router tried, in order (the last one served, if any did).
    attempted: list[str] = field(default_factory=list)
    # The request's headers, for routing overrides (x-gateway-strategy, x-gateway-deployment-tag).
    request_headers: Mapping[str, str] = field(default_factory=dict)
    # Set by the limiter at settle: each budget this request counted against, as it stands after it.
    budgets: list[BudgetUsage] = field(default_factory=list)
    # Plugins (gateway/plugins/): this request's run (None: no plugin applies), what guardrails
    # decided (kinds and counts, never the text), what a cache hit saved, and a masked copy of the
    # body for logs when a guardrail masks in logs only.
    plugins: PluginRun | None = None
    guardrails: list[GuardrailDecision] = field(default_factory=list)
    saved_usd: Decimal | None = None
    redacted_body: dict[str, Any] | None = None
