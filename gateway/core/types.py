"""The gateway's own vocabulary: endpoints, callers, their caps, usage. Imports nothing from the gateway."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol


class Endpoint(StrEnum):
    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    IMAGES = "images/generations"
    IMAGE_EDITS = "images/edits"
    TRANSCRIPTIONS = "audio/transcriptions"
    TRANSLATIONS = "audio/translations"
    SPEECH = "audio/speech"
    MODERATIONS = "moderations"
    RERANK = "rerank"


# Endpoints whose requests are multipart uploads (a file and form fields), not JSON.
MULTIPART_ENDPOINTS = frozenset({Endpoint.IMAGE_EDITS, Endpoint.TRANSCRIPTIONS, Endpoint.TRANSLATIONS})
# Where the text a model reads is, outside chat (default: `input`).
TEXT_FIELD = {Endpoint.COMPLETIONS: "prompt", Endpoint.IMAGES: "prompt", Endpoint.IMAGE_EDITS: "prompt",
              Endpoint.TRANSCRIPTIONS: "prompt", Endpoint.TRANSLATIONS: "prompt", Endpoint.RERANK: "query"}
# Endpoints that may answer with `stream: true` as server-sent events.
SSE_ENDPOINTS = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})


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
class RequestOutcome:
    """How a request ended, built once when it finishes: what settling its reservation needs, and
    what the plugins' `after` (a stream's) and `on_error` hooks are told of it."""

    # Never 0: 499 for a client that left, 500 when nothing else said.
    status: int
    cancelled: bool = False
    usage: Usage | None = None
    # None when no price is known for the deployment that served it.
    cost_usd: Decimal | None = None
    error_type: str | None = None


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


@dataclass(frozen=True, slots=True)
class Spend:
    """What a key or team has spent in its current budget period: the limiter knows, the admin API shows."""

    spent_usd: Decimal
    period_start: datetime | None = None
    period_end: datetime | None = None
    # Anything else the limiter can tell (requests in the current minute, requests in flight...).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class ReportedLoad:
    """How busy an inference server says it is (one read of a vLLM replica's /metrics, say)."""

    waiting: float
    running: float
    kv_usage: float  # 0..1, the fullest engine's


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
    # What the non-text endpoints are billed by: images made (and their size), seconds of audio
    # heard, characters spoken, rerank searches.
    images: int = 0
    image_size: str | None = None
    audio_seconds: Decimal = Decimal(0)
    characters: int = 0
    searches: int = 0

    @classmethod
    def from_openai(cls, usage: dict[str, Any]) -> Usage:
        details = usage.get("prompt_tokens_details") or {}
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            # DeepSeek reports its cache hits under a name of its own.
            cached_tokens=int(details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0),
        )


class StreamTranslator(Protocol):
    """Turns upstream stream bytes into OpenAI SSE bytes, noting usage on the way.

    Adapters make one per streamed request (gateway/providers/base.py), plugins may wrap it
    (gateway/plugins/stream.py), and the relay feeds it (gateway/edge/relay.py).
    """

    # Read-only: a translator may keep them as attributes or compute them (an estimate, say).
    @property
    def usage(self) -> Usage | None: ...

    @property
    def done(self) -> bool: ...

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...
