"""Cohere's errors (`{"id": ..., "message": ...}` with the HTTP status) -> the gateway's. Pure."""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.core.errors import ContextLengthExceeded, GatewayError
from gateway.providers.errors import map_openai_error, scrub

# [unverified] Cohere words context overflows as "too many tokens" in a 400.
_CONTEXT = re.compile(r"too many tokens|context (length|window)", re.IGNORECASE)


def map_error(status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    message = scrub(str(parsed.get("message") or "")) if isinstance(parsed, dict) else ""
    if status == 400 and _CONTEXT.search(message):
        return ContextLengthExceeded(message, param="messages")
    if status == 498:  # Cohere's "invalid token"
        status = 401
    envelope = {"error": {"message": message, "type": None, "code": None}}
    return map_openai_error(status, headers, orjson.dumps(envelope), deployment_id)
