"""The outermost ASGI app: the API endpoints go straight to their handlers, the rest to Starlette.

Every call to the API pays for each layer it crosses, so this front door does in one place what
a middleware stack would do in several: the request id, the in-flight cap (overload is answered
with 503 at once, never queued), the in-flight gauge, and turning any failure into an OpenAI
error without a traceback. Admin pages, health and models take the ordinary Starlette path,
where a few microseconds do not matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.core.errors import GatewayError, InternalError, MethodNotAllowed, Overloaded, ServiceUnavailable
from gateway.edge.request_id import request_id
from gateway.edge.responses import send_error

log = logging.getLogger("gateway")

# A handler reads the request and returns the ASGI response to run.
Handler = Callable[[Request], Awaitable[ASGIApp]]
# Told of every request shed for overload, after its answer is sent (it still gets its ledger row).
ShedHook = Callable[[str, str, GatewayError], Awaitable[None]]

class Gauge(Protocol):
    """What the front door needs of an in-flight gauge (prometheus-client's Gauge fits)."""

    def inc(self) -> None: ...

    def dec(self) -> None: ...


class Front:
    def __init__(
        self,
        app: ASGIApp,
        routes: dict[str, Handler],
        *,
        max_inflight: int,
        retry_after_s: float,
        on_shed: ShedHook | None = None,
        gauge: Gauge | None = None,
    ) -> None:
        self.app = app
        self.routes = routes
        self.max_inflight = max_inflight
        self.inflight = 0
        self.on_shed = on_shed
        self.gauge = gauge
        self._overloaded = Overloaded(
            "The gateway is at capacity; retry after the delay in the retry-after header.",
            retry_after=retry_after_s,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        scope["state"] = {"request_id": rid}
        if scope["method"] != "POST":
            await send_error(send, MethodNotAllowed(f"Method {scope['method']} is not allowed on {scope['path']}.",
                                                    headers={"allow": "POST"}), rid)
            return
        if self.inflight >= self.max_inflight:
            await send_error(send, self._overloaded, rid)
            if self.on_shed is not None:
                await self.on_shed(rid, scope["path"], self._overloaded)
            return
        self.inflight += 1
        if self.gauge is not None:
            self.gauge.inc()
        try:
            try:
                response = await handler(Request(scope, receive))
            except GatewayError as error:
                await send_error(send, error, rid)
                return
            await response(scope, receive, send)
        except asyncio.CancelledError:
            # The server cancels what is still running when the drain after SIGTERM runs out: the
            # request was finished (as cancelled) on the way out; tell the client if it can still hear.
            task = asyncio.current_task()
            if task is None or task.cancelling() > 1:
                raise
            task.uncancel()
            log.info("request %s cut at the end of the drain", rid)
            with contextlib.suppress(RuntimeError, OSError):
                await send_error(send, ServiceUnavailable("The gateway is shutting down; retry the request."), rid)
        except ClientDisconnect:
            # The client's own doing (it left while sending its body), already finished as a 499.
            log.info("client left while sending its body (request %s)", rid)
        except Exception:
            log.exception("unexpected error while serving %s (request %s)", scope["path"], rid)
            try:
                await send_error(send, InternalError("The gateway had an internal error."), rid)
            except RuntimeError:
                pass  # the response had started: the server closes the connection instead
        finally:
            self.inflight -= 1
            if self.gauge is not None:
                self.gauge.dec()
