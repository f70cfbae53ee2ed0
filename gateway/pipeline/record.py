"""The record of one finished request: built once, when it finishes, and what every recorder reads.

`Proxy.finish` builds it after the reservation is settled, from the values the stages returned
(placed on the request's context), the outcome, what the plugins found and the budgets settle
returned; the ledger, the metrics, the request log, tracing and budget alerts each get this
record and nothing else. It is a `NamedTuple`, not a frozen dataclass, because it is built on
every request: a frozen dataclass sets each of its thirty-seven fields through `object.__setattr__`
(about 10 µs a request, measured on Python 3.11), a tuple takes them in one call (about 1 µs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Any, NamedTuple

from gateway.config.file import Deployment
from gateway.core.types import BudgetUsage, Endpoint, GuardrailDecision, Usage

EMPTY: Mapping[Any, Any] = MappingProxyType({})


class RequestRecord(NamedTuple):
    # Built positionally by the proxy (a keyword call costs four times as much): keep the order.
    request_id: str
    endpoint: Endpoint
    # The endpoint as the client called it: `messages`, `responses`, or the body's endpoint.
    endpoint_name: str
    # The request path's clock (perf_counter): arrival, the attempt that served it (or the last
    # one), its first byte, and the finish.
    started: float
    finished: float
    upstream_started: float | None = None
    first_byte_at: float | None = None
    # The caller (None before authentication): never the key itself.
    key_id: str | None = None
    key_prefix: str | None = None
    team_id: str | None = None
    # The client's `user` field.
    user: str | None = None
    # The model asked for ("" when the request was refused before its body said one).
    model: str = ""
    stream: bool = False
    # The deployment of the last attempt, the attempt count, the deployment ids tried in order,
    # and whether a fallback group served it.
    deployment: Deployment | None = None
    attempts: int = 0
    attempted: Sequence[str] = ()
    fallback: bool = False
    # How it ended: never 0 (499 for a client that left, 500 when nothing else said).
    status: int = 0
    error_type: str | None = None
    cancelled: bool = False
    usage: Usage | None = None
    # None when no usage, or no price known for the deployment that served it.
    cost_usd: Decimal | None = None
    # What the usage would have cost on the complexity model's top tier.
    top_tier_cost_usd: Decimal | None = None
    # Answered by a plugin's cache, and what the cached answer had cost.
    cache_hit: bool = False
    saved_usd: Decimal | None = None
    # The client's x-gateway-tags with the plugins' own (gateway.guardrails, gateway.saved_usd).
    tags: Mapping[str, str] = EMPTY
    # Every guardrail decision (kinds and counts, never the text).
    decisions: tuple[GuardrailDecision, ...] = ()
    # Each budget the request counted against, as settling it left them.
    budgets: Sequence[BudgetUsage] = ()
    # The complexity tier the plan chose and its score; whether an embedding classifier was
    # consulted and its reading (None: the features alone decided).
    complexity_tier: str | None = None
    complexity_score: float | None = None
    complexity_classified: bool = False
    complexity_reading: float | None = None
    # The prompt template version the request was rendered from.
    template_id: str | None = None
    template_version: int | None = None
    # The neutral body as it went upstream (not copied: the ledger's fingerprint, a logged prompt),
    # the masked copy for logs when a guardrail masks in logs only, and whether it came with an
    # upload (whose file is not in the body).
    body: Mapping[str, Any] = EMPTY
    redacted_body: Mapping[str, Any] | None = None
    uploaded: bool = False
