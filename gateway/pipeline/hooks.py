"""The seams where later stages join the request path, each with a do-nothing default.

`Admission` reserves capacity (rate limits, budgets) before the upstream call and settles it
after; a `Recorder` sees every finished request once (the ledger, metrics, logs). Both are
built in the app factory and handed to the proxy. A `PluginRun` is one request's pass through
its plugins (gateway/plugins/runner.py), as the request path calls it: named here so that the
request's types never import the plugins.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.core.types import StreamTranslator
from gateway.pipeline.context import RequestContext


class Admission(Protocol):
    async def admit(self, ctx: RequestContext) -> None:
        """Reserve what the request may use; raise a GatewayError (429, 503) to refuse it."""
        ...

    async def settle(self, ctx: RequestContext) -> None:
        """Replace the reservation by what was really used. Called once for every admitted request."""
        ...


class Recorder(Protocol):
    def record(self, ctx: RequestContext) -> None:
        """Called once per finished request; must not block (enqueue, count, log)."""
        ...


class AdmitAll:
    async def admit(self, ctx: RequestContext) -> None:
        return None

    async def settle(self, ctx: RequestContext) -> None:
        return None


class PluginRun(Protocol):
    # What a plugin keeps between its hooks for this request, under its id.
    state: dict[str, Any]

    async def before(self, ctx: RequestContext) -> Any:
        """None to go on to the upstream; else the ASGI response a plugin answered with (a cache hit).

        Typed `Any` because a replayed stream is the proxy's own stream response, which this module
        cannot name without importing the proxy (and, through it, the plugins)."""
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
