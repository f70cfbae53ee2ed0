"""Anthropic's error envelope -> the gateway's errors. Pure.

Anthropic answers `{"type": "error", "error": {"type": ..., "message": ...}}`; the statuses are
OpenAI's except 529 `overloaded_error`, which becomes a retryable 503.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.core.errors import ContextLengthExceeded, GatewayError, RateLimited, UpstreamError, UpstreamTimeout
from gateway.providers.errors import map_openai_error, retry_after_seconds, scrub

# Anthropic's error type for each HTTP status it answers with: the one table of that vocabulary,
# read by this adapter and written by the `/v1/messages` dialect and the fake Anthropic.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# "prompt is too long: 208310 tokens > 200000 maximum", "input length and `max_tokens` exceed context limit"
_CONTEXT = re.compile(r"prompt is too long|exceed(s|ed)? (the )?context|context (window|limit)", re.IGNORECASE)


def parse_envelope(body: bytes) -> tuple[str | None, str]:
    """(error type, message) from Anthropic's envelope; (None, "") when the body is not one."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, ""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return None, ""
    kind, message = error.get("type"), error.get("message")
    return (kind if isinstance(kind, str) else None), (message if isinstance(message, str) else "")


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status."""
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def overloaded(message: str, headers: dict[str, str] | None = None) -> UpstreamError:
    error = UpstreamError(message or "The provider is overloaded; retry shortly.", status=503, type="server_error",
                          code="overloaded", retry_after=retry_after_seconds(headers or {}))
    error.retryable = True
    return error


def map_error(status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
    kind, message = parse_envelope(body)
    message = scrub(message)
    if status == 529 or kind == "overloaded_error":
        return overloaded(message, headers)
    if status in (400, 413) and _CONTEXT.search(message):
        return ContextLengthExceeded(message, param="messages")
    if status == 402 or kind == "billing_error":
        return UpstreamError(f"deployment {deployment_id} cannot bill its provider account; tell the gateway's "
                             "operator", status=502, type="server_error", code="upstream_billing_error")
    envelope = {"error": {"message": message, "type": kind, "code": None}}
    return map_openai_error(status, headers, orjson.dumps(envelope), deployment_id)


def error_from_event(error: Any) -> GatewayError:
    """An `error` event in a stream that had already started."""
    kind = error.get("type") if isinstance(error, dict) else None
    message = scrub(str(error.get("message") or "")) if isinstance(error, dict) else ""
    message = message or "The provider failed in the middle of the answer."
    if kind == "overloaded_error":
        return overloaded(message)
    if kind == "rate_limit_error":
        return RateLimited(message)
    if kind == "timeout_error":
        return UpstreamTimeout(message)
    return UpstreamError(message, status=502, type="server_error", code=kind if isinstance(kind, str) else None)
