"""Responses `response` object -> chat completion, and the meaning of its status and usage. Pure."""

from __future__ import annotations

from typing import Any

from gateway.core.errors import UpstreamError
from gateway.core.types import Usage

JSON = dict[str, Any]

INCOMPLETE_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def usage_of(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    return Usage(prompt_tokens=_int(usage.get("input_tokens")), completion_tokens=_int(usage.get("output_tokens")),
                 cached_tokens=_int(cached))


def chat_usage(usage: Any) -> JSON | None:
    """OpenAI's chat usage object, reasoning tokens kept."""
    counts = usage_of(usage)
    if counts is None:
        return None
    details = usage.get("output_tokens_details") if isinstance(usage, dict) else None
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else 0
    return {
        "prompt_tokens": counts.prompt_tokens,
        "completion_tokens": counts.completion_tokens,
        "total_tokens": counts.prompt_tokens + counts.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": counts.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": _int(reasoning)},
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def finish_reason(response: JSON, called: bool) -> str:
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return INCOMPLETE_FINISH.get(reason, "length") if isinstance(reason, str) else "length"
    return "tool_calls" if called else "stop"


def failure(response: JSON) -> UpstreamError:
    """A response that failed upstream, as the gateway's error."""
    error = given if isinstance(given := response.get("error"), dict) else {}
    message = text if isinstance(text := error.get("message"), str) else "The upstream response failed."
    code = named if isinstance(named := error.get("code"), str) else None
    if code == "rate_limit_exceeded":
        return UpstreamError(message, status=429, type="requests", code=code)
    return UpstreamError(message, status=502, type="server_error", code=code or "upstream_failed")


def from_responses(response: JSON, created: int) -> JSON:
    if response.get("status") == "failed":
        raise failure(response)
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[JSON] = []
    output = response.get("output")
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif isinstance(part, dict) and part.get("type") == "refusal" \
                        and isinstance(part.get("refusal"), str):
                    refusals.append(part["refusal"])
        elif item.get("type") == "function_call":
            arguments = item.get("arguments")
            calls.append({"id": str(item.get("call_id") or ""), "type": "function", "function": {
                "name": str(item.get("name") or ""), "arguments": arguments if isinstance(arguments, str) else "{}"}})
    message: JSON = {"role": "assistant", "content": "".join(texts) if texts or not calls else None,
                     "refusal": "".join(refusals) or None}
    if calls:
        message["tool_calls"] = calls
    completion: JSON = {
        "id": str(response.get("id") or ""),
        "object": "chat.completion",
        "created": response["created_at"] if isinstance(response.get("created_at"), int) else created,
        "model": str(response.get("model") or ""),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason(response, bool(calls))}],
    }
    usage = chat_usage(response.get("usage"))
    if usage is not None:
        completion["usage"] = usage
    return completion
