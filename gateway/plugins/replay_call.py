"""A cached answer replayed to a streaming client, as an ASGI response.

The request's dialect wraps it as it wraps a relayed stream (the inbound `/v1/messages` turns its
OpenAI chunks into Anthropic events). Everything is known up front: the whole stream goes out in
one body message.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from gateway.edge.relay import SSE_HEADERS


class ReplayCall:
    __slots__ = ("body", "headers")

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        self.body = body
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = SSE_HEADERS + [(k.encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})
