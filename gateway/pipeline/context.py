"""The typed context that travels down the request path, stage to stage.

The client's request itself is one frozen `ClientRequest` (`ctx.request`), which the stages below
the proxy are handed; the context's `body`, `model`, `stream`... are read from it. The rest is
what the proxy places as the stages return their values, for the request's record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gateway.config.file import Deployment, ModelGroup
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, GuardrailDecision, Principal, RequestOutcome, Usage
from gateway.core.upload import Upload

if TYPE_CHECKING:
    from gateway.pipeline.hooks import PluginRun


@dataclass(slots=True)
class RequestContext:
    request_id: str
    endpoint: Endpoint
    started: float
    # The API the client spoke when it is not the endpoint the body is shaped as: "messages" or
    # "responses" (a chat-shaped body). What logs, metrics and the ledger name the request by.
    api: str = ""
    # The caller and its x-gateway-tags, known before the body is read: a request refused at its
    # body is recorded with them. The request value carries the same ones.
    principal: Principal | None = None
    # The client's request, once its body is read and checked; None for one refused before that.
    request: ClientRequest | None = None
    # The model a request refused before its request value was built named, for its record.
    named_model: str = ""
    deployment: Deployment | None = None
    attempts: int = 0
    status: int = 0
    error_type: str | None = None
    usage: Usage | None = None
    upstream_started: float | None = None
    first_byte_at: float | None = None
    cancelled: bool = False
    # The key whose in-process parallel slot this request holds (taken before its body is read).
    slot_key: str | None = None
    # Headers every response to this request carries, e.g. the x-ratelimit-* set.
    response_headers: dict[str, str] = field(default_factory=dict)
    # For the ledger: the client's x-gateway-tags (its record adds the plugins'), and how the
    # answer was made.
    tags: dict[str, str] = field(default_factory=dict)
    cache_hit: bool = False
    # Set by the router when a fallback group, not the group of the model asked for, served it.
    fallback: bool = False
    # The deployment ids the router tried, in order (the last one served, if any did).
    attempted: list[str] = field(default_factory=list)
    # Plugins (gateway/plugins/): this request's run (None: no plugin applies), what guardrails
    # decided (kinds and counts, never the text), what a cache hit saved, and a masked copy of the
    # body for logs when a guardrail masks in logs only.
    plugins: PluginRun | None = None
    # What the `before` hooks decided, as their run returned it (the Responses dialect's adapter
    # chooser reads whether the request was masked); the run hands every decision over at the end.
    decided_before: tuple[GuardrailDecision, ...] = ()
    # Decisions a hook appended here itself (a plugin in the older form, or one called by hand
    # with no run): counted with the run's own when the request finishes.
    guardrails: list[GuardrailDecision] = field(default_factory=list)
    saved_usd: Decimal | None = None
    redacted_body: dict[str, Any] | None = None
    # Set by the router's `complexity` stage (gateway/routing/complexity.py): the tier and its score.
    complexity_tier: str | None = None
    complexity_score: float | None = None
    # Where the model has an embedding classifier: its reading (None when the features alone
    # decided: no text to read, or the embeddings failed or were slow).
    complexity_classified: bool = False
    complexity_reading: float | None = None
    # The top tier's group, where the record prices this request's usage too.
    complexity_top: ModelGroup | None = None
    # The prompt template version the request was rendered from (gateway/prompts/).
    template_id: str | None = None
    template_version: int | None = None
    # A dialect's own state for this request (gateway/dialects/responses: the turn being answered).
    dialect: object | None = None
    # How the request ended, placed by the proxy once it has finished (for a request with plugins
    # or a reservation), before the plugins' `after` (a stream's) and `on_error` hooks run; the
    # recorders get a `RequestRecord` instead.
    outcome: RequestOutcome | None = None

    # Read from the request value; what a request refused before it had one says.
    @property
    def body(self) -> dict[str, Any]:
        return self.request.body if self.request is not None else {}

    @property
    def model(self) -> str:
        return self.request.model if self.request is not None else self.named_model

    @property
    def upload(self) -> Upload | None:
        return self.request.upload if self.request is not None else None

    @property
    def stream(self) -> bool:
        return self.request is not None and self.request.stream

    @property
    def client_wants_usage(self) -> bool:
        return self.request is not None and self.request.client_wants_usage

    @property
    def user(self) -> str | None:
        return self.request.user if self.request is not None else None

    @property
    def request_headers(self) -> Mapping[str, str]:
        return self.request.headers if self.request is not None else {}

    @property
    def endpoint_name(self) -> str:
        """The endpoint as the client called it: `messages`, `responses`, or the body's endpoint."""
        return self.api or self.endpoint.value
