"""Bedrock's errors -> the gateway's. Pure.

A failed call answers `{"message": ...}` with the exception's name in the `x-amzn-ErrorType`
header (`ThrottlingException:http://...`). Inside a stream an exception is an event-stream
message whose `:message-type` is `exception` and `:exception-type` names it (lower camel case).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.core.errors import ContextLengthExceeded, GatewayError, RateLimited, UpstreamError, UpstreamTimeout
from gateway.providers.errors import map_openai_error, scrub

# "Input is too long for requested model.", "...prompt is too long...", "too many input tokens"
_CONTEXT = re.compile(r"input is too long|prompt is too long|too many (input )?tokens|context (window|length)",
                      re.IGNORECASE)


def message_of(body: bytes) -> str:
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    message = parsed.get("message") or parsed.get("Message")
    return scrub(message) if isinstance(message, str) else ""


def error_type(headers: dict[str, str]) -> str:
    value = next((v for k, v in headers.items() if k.lower() == "x-amzn-errortype"), "")
    return value.partition(":")[0]


def map_error(status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
    kind = error_type(headers)
    message = message_of(body)
    if status == 400 and _CONTEXT.search(message):
        return ContextLengthExceeded(message, param="messages")
    if kind in ("ServiceUnavailableException", "ModelNotReadyException") or status == 503:
        error = UpstreamError(message or "Bedrock is unavailable; retry shortly.", status=503, type="server_error",
                              code="overloaded")
        error.retryable = True
        return error
    if status == 424 or kind == "ModelErrorException":
        return UpstreamError(message or f"deployment {deployment_id}'s model failed", status=502,
                             type="server_error", code="upstream_error")
    envelope = {"error": {"message": message, "type": kind or None, "code": None}}
    return map_openai_error(status, headers, orjson.dumps(envelope), deployment_id)


def error_from_exception(kind: str, payload: bytes) -> GatewayError:
    """An exception message in a stream that had already started."""
    message = message_of(payload) or "Bedrock failed in the middle of the answer."
    if kind == "throttlingException":
        return RateLimited(message)
    if kind in ("serviceUnavailableException", "modelNotReadyException"):
        error = UpstreamError(message, status=503, type="server_error", code="overloaded")
        error.retryable = True
        return error
    if kind == "modelTimeoutException":
        return UpstreamTimeout(message)
    return UpstreamError(message, status=502, type="server_error", code=kind or "upstream_error")
