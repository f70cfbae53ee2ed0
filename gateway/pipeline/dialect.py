"""The API a client speaks, around the neutral request and answer the proxy works with.

A dialect is a reader and a writer. Its reader turns the request body into the neutral
(OpenAI-shaped) body and returns it as a `Read`, which the proxy places; its writer puts the
unary answer, the stream (the neutral chat.completion.chunk stream, fed to it by the relay) and
the errors in its own shape. The proxy calls `unary` or `stream_writer` as the request went, so
no caller sorts an answer by its type. OpenAI's own endpoints are `OPENAI`: their body is the
neutral one, and nothing is rewritten (their stream has no writer at all).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.core.errors import GatewayError
from gateway.core.types import Principal
from gateway.edge.relay import StreamWriter
from gateway.edge.responses import JSONReply, send_error
from gateway.pipeline.context import RequestContext


@dataclass(frozen=True, slots=True)
class Read:
    """What a dialect's reader gives back, for the proxy to place."""

    # The neutral request body.
    body: dict[str, Any]
    # The dialect's own state for this request (the Responses dialect's turn), where the adapters
    # that serve the dialect find it (`ctx.dialect`).
    state: object | None = None
    # The stored prompt template the reader rendered, for the request's record.
    template_id: str | None = None
    template_version: int | None = None


# Raw body and the caller (known by then) -> what was read; raises GatewayError.
Reader = Callable[[bytes, Principal | None], Read | Awaitable[Read]]


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

    def stream_writer(self, ctx: RequestContext) -> StreamWriter | None:
        """What writes the neutral stream (the relay's, or a replayed cache hit) in this API's
        events once its head is sent; None when the neutral stream is this API's own."""
        ...

    def error(self, error: GatewayError, request_id: str) -> ASGIApp:
        """A request that ended before its answer started, in this API's error shape."""
        ...


class OpenAIDialect:
    api = ""
    read: Reader | None = None

    async def unary(self, reply: JSONReply, ctx: RequestContext) -> ASGIApp:
        return reply

    def stream_writer(self, ctx: RequestContext) -> StreamWriter | None:
        return None

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
