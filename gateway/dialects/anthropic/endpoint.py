"""`POST /v1/messages`: Anthropic's Messages API in front of the normal proxy path.

The request is translated into an OpenAI chat request and handed to `Proxy.handle`, so auth
(`x-api-key` works), limits, routing, every provider adapter and accounting apply unchanged;
the answer, the stream and the errors are translated back into Anthropic's shapes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from gateway.core.errors import GatewayError
from gateway.core.types import Endpoint
from gateway.dialects.anthropic.request import to_openai
from gateway.dialects.anthropic.response import error_from_gateway, error_from_openai, to_message
from gateway.dialects.anthropic.stream import MessagesStreamTranslator
from gateway.edge.responses import FinishingReply
from gateway.pipeline.proxy import Proxy, StreamCall

_REPLACED = frozenset({"content-length", "content-type"})


def messages_endpoint(proxy: Proxy) -> Callable[[Request], Awaitable[Response | FinishingReply | MessagesStream]]:
    async def messages(request: Request) -> Response | FinishingReply | MessagesStream:
        request_id = request.scope["state"]["request_id"]
        try:
            answer = await proxy.handle(request, Endpoint.CHAT, adapt=_read, api="messages")
        except GatewayError as error:
            headers = {**error.headers(), "request-id": request_id}
            return Response(error_from_gateway(error, request_id), status_code=error.status, headers=headers,
                            media_type="application/json")
        if isinstance(answer, StreamCall):
            return MessagesStream(answer, request_id)
        headers = {k: v for k, v in (answer.headers or {}).items() if k not in _REPLACED}
        headers["request-id"] = request_id
        try:
            body = orjson.dumps(to_message(_completion(answer.body)))
        except BaseException:
            if isinstance(answer, FinishingReply):
                await answer.then()  # it will not be sent: finish the request here
            raise
        if isinstance(answer, FinishingReply):
            return answer.replaced(body, headers)
        return Response(body, headers=headers, media_type="application/json")  # a cache hit, already finished

    return messages


def _read(raw: bytes, ctx: object) -> dict[str, Any]:
    return to_openai(raw)


def _completion(body: bytes | memoryview) -> dict[str, Any]:
    # The adapters already checked it is JSON; an object is all that is left to be sure of.
    parsed = orjson.loads(body)
    return parsed if isinstance(parsed, dict) else {}


class MessagesStream:
    """Runs the proxy's stream and rewrites what it sends: OpenAI chunks become Anthropic events."""

    def __init__(self, call: StreamCall, request_id: str) -> None:
        self.call = call
        self.request_id = request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        translator = MessagesStreamTranslator(self.call.ctx.model)
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
