"""`POST /v1/messages`: Anthropic's Messages API in front of the normal proxy path.

The request is read into an OpenAI chat request and served by the proxy, so auth
(`x-api-key` works), limits, routing, every provider adapter and accounting apply unchanged;
the answer, the stream and the errors are translated back into Anthropic's shapes.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.core.errors import GatewayError
from gateway.dialects.anthropic.request import to_openai
from gateway.dialects.anthropic.response import error_from_gateway, error_from_openai, to_message
from gateway.dialects.anthropic.stream import MessagesStreamTranslator
from gateway.edge.responses import JSONReply
from gateway.pipeline.context import RequestContext

_REPLACED = frozenset({"content-length", "content-type"})


class MessagesDialect:
    """Anthropic's Messages API: read into a chat request, the answer and errors written back."""

    api = "messages"

    @staticmethod
    def read(raw: bytes, ctx: RequestContext) -> dict[str, Any]:
        return to_openai(raw)

    async def unary(self, reply: JSONReply, ctx: RequestContext) -> ASGIApp:
        headers = {k: v for k, v in (reply.headers or {}).items() if k not in _REPLACED}
        headers["request-id"] = ctx.request_id
        return JSONReply(orjson.dumps(to_message(_completion(reply.body))), reply.status, headers)

    def stream(self, app: ASGIApp, ctx: RequestContext) -> ASGIApp:
        return MessagesStream(app, ctx.model, ctx.request_id)

    def error(self, error: GatewayError, request_id: str) -> ASGIApp:
        headers = {**error.headers(), "request-id": request_id}
        return Response(error_from_gateway(error, request_id), status_code=error.status, headers=headers,
                        media_type="application/json")


MESSAGES = MessagesDialect()


def _completion(body: bytes | memoryview) -> dict[str, Any]:
    # The adapters already checked it is JSON; an object is all that is left to be sure of.
    parsed = orjson.loads(body)
    return parsed if isinstance(parsed, dict) else {}


class MessagesStream:
    """Runs the proxy's stream and rewrites what it sends: OpenAI chunks become Anthropic events."""

    def __init__(self, call: ASGIApp, model: str, request_id: str) -> None:
        self.call = call
        self.model = model
        self.request_id = request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        translator = MessagesStreamTranslator(self.model)
        status = 200

        async def translated(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
                headers.append((b"request-id", self.request_id.encode()))
                await send({**message, "headers": headers})
            elif message["type"] == "http.response.body" and status != 200:
                # The stream failed before it started: the proxy sent an OpenAI error body.
                await send({**message, "body": error_from_openai(status, message.get("body", b""), self.request_id)})
            elif message["type"] == "http.response.body":
                more = message.get("more_body", False)
                body = translator.feed(message.get("body", b""))
                if not more:
                    body += translator.finish()
                await send({**message, "body": body})
            else:
                await send(message)

        await self.call(scope, receive, translated)
