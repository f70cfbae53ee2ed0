"""A cached answer replayed to a streaming client, as an ASGI response.

The body is the neutral stream (OpenAI's chunks); the proxy hands the replay the request's dialect's
writer (`written`), as it hands one to the relay, so an inbound `/v1/messages` hears Anthropic
events. Everything is known up front: the whole stream goes out in one body message.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from gateway.edge.relay import StreamWriter, sse_head


class ReplayCall:
    __slots__ = ("body", "headers", "writer")

    def __init__(self, body: bytes, headers: dict[str, str], writer: StreamWriter | None = None) -> None:
        self.body = body
        self.headers = headers
        self.writer = writer

    def written(self, writer: StreamWriter | None) -> ReplayCall:
        """The same replay, written by `writer` (None: the client reads the neutral stream as it is)."""
        return self if writer is None else ReplayCall(self.body, self.headers, writer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer = self.writer
        if writer is None:
            headers, body = self.headers, self.body
        else:
            headers = {**self.headers, **writer.headers}
            body = await writer.feed(self.body) + await writer.finish()
        await send({"type": "http.response.start", "status": 200, "headers": sse_head(headers)})
        await send({"type": "http.response.body", "body": body, "more_body": False})
