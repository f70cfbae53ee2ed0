"""A cached answer replayed to a streaming client, as the ASGI response the proxy gives streams.

It is a `StreamCall`, so what wraps the proxy's streams (the inbound `/v1/messages`, which turns
OpenAI chunks into Anthropic events) wraps it the same way. Everything is known up front: the
whole stream goes out in one body message. Imported lazily by the runner (the proxy imports it).
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from gateway.edge.relay import SSE_HEADERS
from gateway.pipeline.context import RequestContext
from gateway.pipeline.proxy import StreamCall


class ReplayCall(StreamCall):
    status_code = 200

    def __init__(self, ctx: RequestContext, body: bytes, headers: dict[str, str]) -> None:
        self.ctx = ctx
        self.body = body
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = SSE_HEADERS + [(k.encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})
