"""The seams where later stages join the request path, each with a do-nothing default.

`Admission` reserves capacity (rate limits, budgets) before the upstream call and returns the
reservation; the request's exchange hands it back to `settle` with how the request ended. A
`Recorder` gets every finished request's `RequestRecord` once (the ledger, metrics, logs). Both
are built in the app factory and handed to the proxy. A `PluginRun` is one request's pass through
its plugins (gateway/plugins/runner.py), as the request path calls it: named here so that the
request's types never import the plugins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from starlette.types import ASGIApp

from gateway.core.request import ClientRequest
from gateway.core.types import BudgetUsage, GuardrailDecision, RequestOutcome, StreamTranslator
from gateway.pipeline.context import RequestContext
from gateway.pipeline.record import RequestRecord


class Reserved(Protocol):
    # Headers every response to the request carries (the x-ratelimit-* set).
    @property
    def headers(self) -> Mapping[str, str]: ...


class Admission(Protocol):
    async def admit(self, request: ClientRequest) -> Any:
        """What was reserved (a `Reserved`; None when nothing was), to be settled once the request
        ends; raise a GatewayError (429, 503) to refuse it."""
        ...

    async def settle(self, reservation: Any, outcome: RequestOutcome) -> Sequence[BudgetUsage]:
        """Replace the reservation by what was really used; the budgets it counted against, as they
        stand after it. Called once for every reservation."""
        ...


class Recorder(Protocol):
    def record(self, record: RequestRecord) -> None:
        """Called once per finished request, with its record; must not block (enqueue, count, log)."""
        ...


class AdmitAll:
    async def admit(self, request: ClientRequest) -> None:
        return None

    async def settle(self, reservation: Any, outcome: RequestOutcome) -> Sequence[BudgetUsage]:
        return ()


@dataclass(frozen=True, slots=True)
class PluginsBefore:
    """What the request's `before` hooks gave back, for the proxy to place."""

    # None to go on to the upstream; else the ASGI response a plugin answered with (a cache hit:
    # a `JSONReply`, or a `ReplayCall` for a stream).
    reply: ASGIApp | None = None
    # The body as the hooks left it (the one the request came with when none changed it).
    body: dict[str, Any] = field(default_factory=dict)
    decisions: tuple[GuardrailDecision, ...] = ()
    redacted: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    cache_hit: bool = False
    saved_usd: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PluginFindings:
    """What the request's plugins found, handed over once it finished: every decision, and the
    tags that carry them (and a cache hit's saving) into the ledger row."""

    decisions: tuple[GuardrailDecision, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)


NO_FINDINGS = PluginFindings()


class PluginRun(Protocol):
    # What a plugin keeps between its hooks for this request, under its id.
    state: dict[str, Any]

    async def before(self, ctx: RequestContext) -> PluginsBefore:
        """The hooks in order, each seeing the body the one before it left."""
        ...

    def decided(self, decision: GuardrailDecision) -> None:
        """A decision a hook could not return (a refusal, a stream's chunks, `after`)."""
        ...

    async def after(self, ctx: RequestContext, body: bytes) -> bytes:
        """A unary answer before it is sent: what the `after` hooks make of it."""
        ...

    def wrap(self, ctx: RequestContext, translator: StreamTranslator) -> StreamTranslator:
        """The stream's translator, behind the chunk hooks."""
        ...

    async def finish(self, ctx: RequestContext, outcome: RequestOutcome) -> PluginFindings:
        """Every request, once, before it is settled and recorded: a streamed answer's `after`, or
        `on_error`, as `outcome` says it ended; what the plugins found."""
        ...
