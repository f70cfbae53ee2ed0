"""The seams where later stages join the request path, each with a do-nothing default.

`Admission` reserves capacity (rate limits, budgets) before the upstream call and returns the
reservation; the request's exchange hands it back to `settle` with how the request ended. A
`Recorder` sees every finished request once (the ledger, metrics, logs). Both are built in the
app factory and handed to the proxy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from gateway.core.types import BudgetUsage, RequestOutcome
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
