"""The seams where later stages join the request path, each with a do-nothing default.

`Admission` reserves capacity (rate limits, budgets) before the upstream call and returns the
reservation; the request's exchange hands it back to `settle` with how the request ended. A
`Recorder` sees every finished request once (the ledger, metrics, logs). Both are built in the
app factory and handed to the proxy. A `PluginRun` is one request's pass through its plugins
(gateway/plugins/runner.py), as the request path calls it: named here so that the request's
types never import the plugins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from gateway.core.types import BudgetUsage, RequestOutcome, StreamTranslator
from gateway.pipeline.context import RequestContext


class Reserved(Protocol):
    # Headers every response to the request carries (the x-ratelimit-* set).
    @property
    def headers(self) -> Mapping[str, str]: ...


class Admission(Protocol):
    async def admit(self, ctx: RequestContext) -> Any:
        """What was reserved (a `Reserved`; None when nothing was), to be settled once the request
        ends; raise a GatewayError (429, 503) to refuse it."""
        ...

    async def settle(self, reservation: Any, outcome: RequestOutcome) -> Sequence[BudgetUsage]:
        """Replace the reservation by what was really used; the budgets it counted against, as they
        stand after it. Called once for every reservation."""
        ...


class Recorder(Protocol):
    def record(self, ctx: RequestContext) -> None:
        """Called once per finished request; must not block (enqueue, count, log)."""
        ...


class AdmitAll:
    async def admit(self, ctx: RequestContext) -> None:
        return None

    async def settle(self, reservation: Any, outcome: RequestOutcome) -> Sequence[BudgetUsage]:
        return ()


class PluginRun(Protocol):
    # What a plugin keeps between its hooks for this request, under its id.
    state: dict[str, Any]

    async def before(self, ctx: RequestContext) -> Any:
        """None to go on to the upstream; else the ASGI response a plugin answered with (a cache hit:
        a `JSONReply`, or a `ReplayCall` for a stream)."""
        ...

    async def after(self, ctx: RequestContext, body: bytes) -> bytes:
        """A unary answer before it is sent: what the `after` hooks make of it."""
        ...

    def wrap(self, ctx: RequestContext, translator: StreamTranslator) -> StreamTranslator:
        """The stream's translator, behind the chunk hooks."""
        ...

    async def finish(self, ctx: RequestContext) -> None:
        """Every request, once, before it is recorded: a streamed answer's `after`, or `on_error`."""
        ...
