"""Building responses: JSON bodies and OpenAI-format errors, as Starlette responses or raw ASGI."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Send

from gateway.errors import GatewayError


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def error_response(error: GatewayError) -> Response:
    return Response(error.body_bytes(), status_code=error.status, headers=error.headers(),
                    media_type="application/json")


async def send_error(send: Send, error: GatewayError) -> None:
    """For code that owns the ASGI `send` (streams, middleware) and has not started a response."""
    headers = [(b"content-type", b"application/json")]
    headers += [(name.encode(), value.encode()) for name, value in error.headers().items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": error.body_bytes()})
