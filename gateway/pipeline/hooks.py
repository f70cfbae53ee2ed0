"""The seams where later stages join the request path, each with a do-nothing default.

`Admission` reserves capacity (rate limits, budgets) before the upstream call and settles it
after; a `Recorder` sees every finished request once (the ledger, metrics, logs). Both are
built in the app factory and handed to the proxy.
"""

from __future__ import annotations

from typing import Protocol

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
