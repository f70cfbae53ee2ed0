"""Upstream error answers -> the gateway's errors: what every adapter shares. Pure.

Most services answer errors in OpenAI's envelope (`{"error": {"message", "type", "param", "code"}}`),
and OpenAI's statuses are the common ground: `map_openai_error` is the mapping other adapters fall
back on once they have read their own envelope. `scrub` takes credentials out of upstream messages.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.core.errors import (
    ContextLengthExceeded,
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)

_SECRETISH = re.compile(r"(sk|key|api)[-_][A-Za-z0-9_\-]{6,}", re.IGNORECASE)
_MAX_MESSAGE = 1000


def parse_error_envelope(body: bytes) -> dict[str, Any]:
    """The error object from OpenAI's nested shape or older vLLM's flat one; {} if neither."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    error = parsed.get("error", parsed)
    if isinstance(error, str):
        return {"message": error}
    return error if isinstance(error, dict) else {}


def retry_after_seconds(headers: dict[str, str]) -> float | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


def scrub(message: str) -> str:
    """Upstream messages can echo credentials ("Incorrect API key provided: sk-…")."""
    return _SECRETISH.sub("[redacted]", message)[:_MAX_MESSAGE]


def map_openai_error(status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
    error = parse_error_envelope(body)
    message = scrub(str(error.get("message") or f"deployment {deployment_id} answered HTTP {status}"))
    code = error.get("code")
    code = str(code) if code is not None and not isinstance(code, int) else None
    param = error.get("param") if isinstance(error.get("param"), str) else None
    if status in (400, 413, 422):
        if code == "context_length_exceeded" or "context length" in message.lower():
            return ContextLengthExceeded(message, param=param or "messages")
        return InvalidRequest(message, param=param, code=code)
    if status in (401, 403):
        return UpstreamError(
            f"deployment {deployment_id} rejected the gateway's credentials; tell the gateway's operator",
            status=502,
            type="server_error",
            code="upstream_auth_failed",
        )
    if status == 404:
        return UpstreamError(
            f"deployment {deployment_id} does not serve this model or endpoint",
            status=502,
            type="server_error",
            code="upstream_not_found",
        )
    if status == 408:
        return UpstreamTimeout(f"deployment {deployment_id} timed out")
    if status == 429:
        return RateLimited(message, retry_after=retry_after_seconds(headers))
    if status in (502, 503, 504):
        return UpstreamError(message, status=status, type="server_error", code=code,
                             retry_after=retry_after_seconds(headers))
    if status >= 500:
        return UpstreamError(message, status=502, type="server_error", code=code or "upstream_error")
    return UpstreamError(message, status=status, type="invalid_request_error", code=code)
