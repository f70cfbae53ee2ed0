"""Gemini's error envelope -> the gateway's errors. Pure.

Gemini answers `{"error": {"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED",
"details": [...]}}` (Google's API error shape). A bad key is a 400 there (`API_KEY_INVALID`),
and the retry delay of a 429 may come only in a `RetryInfo` detail.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.core.errors import ContextLengthExceeded, GatewayError, RateLimited
from gateway.providers.errors import map_openai_error, retry_after_seconds, scrub

# "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576)."
_CONTEXT = re.compile(r"exceeds the maximum number of tokens|input token count|context (window|length)",
                      re.IGNORECASE)
_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")


def parse_envelope(body: bytes) -> dict[str, Any]:
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if isinstance(parsed, list) and parsed:  # the JSON-array stream form wraps errors too
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else {}


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _retry_delay(error: dict[str, Any]) -> float | None:
    for detail in _details(error):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _bad_key(error: dict[str, Any]) -> bool:
    return any(detail.get("reason") == "API_KEY_INVALID" for detail in _details(error)) \
        or "api key not valid" in str(error.get("message", "")).lower()


def map_error(status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
    error = parse_envelope(body)
    message = scrub(str(error.get("message") or ""))
    if status == 400 and _bad_key(error):
        status = 401
    elif status in (400, 413) and _CONTEXT.search(message):
        return ContextLengthExceeded(message, param="messages")
    elif status == 429:
        retry_after = retry_after_seconds(headers)
        return RateLimited(message or f"deployment {deployment_id} is rate limited",
                           retry_after=retry_after if retry_after is not None else _retry_delay(error))
    envelope = {"error": {"message": message, "type": None, "code": None}}
    return map_openai_error(status, headers, orjson.dumps(envelope), deployment_id)
