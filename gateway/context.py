"""The typed context that travels down the request path, stage to stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from gateway.config import Deployment


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
