"""Building responses: JSON bodies and OpenAI-format errors, as Starlette responses or raw ASGI."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.core.errors import GatewayError


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def error_response(error: GatewayError) -> Response:
    return Response(error.body_bytes(), status_code=error.status, headers=error.headers(),
                    media_type="application/json")


async def send_error(send: Send, error: GatewayError, request_id: str | None = None) -> None:
    """For code that owns the ASGI `send` (streams, middleware) and has not started a response."""
    extra = error.headers()
    if request_id is not None:
        extra["x-request-id"] = request_id
    await JSONReply(error.body_bytes(), error.status, extra)(None, None, send)  # type: ignore[arg-type]


class JSONReply:
    """A JSON response as two ASGI messages; lighter than Starlette's Response on the hot path."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.status = status
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # An answer that is not JSON (a transcript as text) names its own content type.
        typed = self.headers is not None and "content-type" in self.headers
        headers = [(b"content-length", str(len(self.body)).encode())]
        if not typed:
            headers.append((b"content-type", b"application/json"))
        if self.headers:
            headers += [(name.encode(), value.encode()) for name, value in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})
