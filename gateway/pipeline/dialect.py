"""The API a client speaks, around the neutral request and answer the proxy works with.

A dialect reads its request body into the neutral (OpenAI-shaped) body and writes the answer,
the stream and the errors back in its own shape. The proxy calls `unary` or `stream` as the
request went, so no caller sorts an answer by its type. OpenAI's own endpoints are `OPENAI`:
their body is the neutral one, and nothing is rewritten.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.core.errors import GatewayError
from gateway.edge.responses import JSONReply, send_error
from gateway.pipeline.context import RequestContext

# Raw body -> the neutral request body, given the context with its caller known; raises GatewayError.
Reader = Callable[[bytes, RequestContext], dict[str, Any] | Awaitable[dict[str, Any]]]


class Dialect(Protocol):
    # How logs, metrics and the ledger name the API ("" for OpenAI's, named by the endpoint).
    @property
    def api(self) -> str: ...

    # None: the body is already neutral (OpenAI's), parsed as the endpoint's.
    @property
    def read(self) -> Reader | None: ...

    async def unary(self, reply: JSONReply, ctx: RequestContext) -> ASGIApp:
        """The whole answer (upstream or a plugin's), in this API's shape."""
        ...

    def stream(self, app: ASGIApp, ctx: RequestContext) -> ASGIApp:
        """The streamed answer (the relay, or a replayed cache hit), in this API's shape."""
        ...

    def error(self, error: GatewayError, request_id: str) -> ASGIApp:
        """A request that ended before its answer started, in this API's error shape."""
        ...


class OpenAIDialect:
    api = ""
    read: Reader | None = None

    async def unary(self, reply: JSONReply, ctx: RequestContext) -> ASGIApp:
        return reply

    def stream(self, app: ASGIApp, ctx: RequestContext) -> ASGIApp:
        return app

    def error(self, error: GatewayError, request_id: str) -> ASGIApp:
        return ErrorReply(error, request_id)


class ErrorReply:
    __slots__ = ("error", "request_id")

    def __init__(self, error: GatewayError, request_id: str) -> None:
        self.error = error
        self.request_id = request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_error(send, self.error, self.request_id)


# Stateless: one for every OpenAI-shaped request.
OPENAI = OpenAIDialect()
