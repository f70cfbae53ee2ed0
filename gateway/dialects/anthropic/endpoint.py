"""`POST /v1/messages`: Anthropic's Messages API in front of the normal proxy path.

The request is read into an OpenAI chat request and served by the proxy, so auth
(`x-api-key` works), limits, routing, every provider adapter and accounting apply unchanged;
the answer and the errors are written in Anthropic's shapes, and the neutral stream in its events
by `MessagesWriter`, which the relay calls.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp

from gateway.core.errors import GatewayError
from gateway.core.types import Principal
from gateway.dialects.anthropic.request import to_openai
from gateway.dialects.anthropic.response import error_from_gateway, to_message
from gateway.dialects.anthropic.stream import MessagesStreamTranslator
from gateway.edge.responses import JSONReply
from gateway.pipeline.context import RequestContext
from gateway.pipeline.dialect import Read

_REPLACED = frozenset({"content-length", "content-type"})


class MessagesDialect:
    """Anthropic's Messages API: read into a chat request, the answer and errors written back."""

    api = "messages"

    @staticmethod
    def read(raw: bytes, principal: Principal | None) -> Read:
        return Read(to_openai(raw))

    async def unary(self, reply: JSONReply, ctx: RequestContext) -> ASGIApp:
        headers = {k: v for k, v in (reply.headers or {}).items() if k not in _REPLACED}
        headers["request-id"] = ctx.request_id
        return JSONReply(orjson.dumps(to_message(_completion(reply.body))), reply.status, headers)

    def stream_writer(self, ctx: RequestContext) -> MessagesWriter:
        return MessagesWriter(ctx.model, ctx.request_id)

    def error(self, error: GatewayError, request_id: str) -> ASGIApp:
        headers = {**error.headers(), "request-id": request_id}
        return Response(error_from_gateway(error, request_id), status_code=error.status, headers=headers,
                        media_type="application/json")


MESSAGES = MessagesDialect()


def _completion(body: bytes | memoryview) -> dict[str, Any]:
    # The adapters already checked it is JSON; an object is all that is left to be sure of.
    parsed = orjson.loads(body)
    return parsed if isinstance(parsed, dict) else {}


class MessagesWriter:
    """The neutral stream as Anthropic's events (stream.py); its head names the request (`request-id`)."""

    __slots__ = ("_events", "headers")

    def __init__(self, model: str, request_id: str) -> None:
        self.headers = {"request-id": request_id}
        self._events = MessagesStreamTranslator(model)

    async def feed(self, data: bytes) -> bytes:
        return self._events.feed(data)

    async def finish(self) -> bytes:
        return self._events.finish()

    async def error(self, error: GatewayError) -> bytes:
        return self._events.fail(error.body()["error"])
