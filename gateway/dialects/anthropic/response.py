"""OpenAI chat.completion -> Anthropic Message, and gateway errors in Anthropic's shape. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.errors import GatewayError
from gateway.providers.anthropic.errors import error_type as anthropic_error_type

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}



def stop_reason(finish_reason: Any) -> str:
    return STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"


def anthropic_usage(usage: Any) -> dict[str, int]:
    """Anthropic's convention from OpenAI's: there, `input_tokens` excludes the cached tokens."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    cached = cached if isinstance(cached, int) else 0
    prompt = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else 0
    completion = usage.get("completion_tokens") if isinstance(usage.get("completion_tokens"), int) else 0
    return {
        "input_tokens": max(0, prompt - cached),
        "output_tokens": completion,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic sends; kept, not lost, when not valid JSON."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        parsed = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        parsed = None
    return parsed if isinstance(parsed, dict) else {"_unparsed_arguments": str(arguments)}


def to_message(completion: dict[str, Any]) -> dict[str, Any]:
    choices = completion.get("choices")
    choice: dict[str, Any] = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) \
        else {}
    message: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            content.append({"type": "tool_use", "id": call.get("id") or "", "name": function.get("name") or "",
                            "input": tool_input(function.get("arguments"))})
    return {
        "id": str(completion.get("id") or "msg_gateway"),
        "type": "message",
        "role": "assistant",
        "model": str(completion.get("model") or ""),
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": anthropic_usage(completion.get("usage")),
    }


def error_type(status: int) -> str:
    """Anthropic's error type for a status the gateway answers with; its 503 (overloaded or
    unavailable) is what Anthropic says with 529."""
    return anthropic_error_type(529 if status == 503 else status)


def error_body(status: int, message: str, request_id: str | None = None) -> bytes:
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type(status), "message": message}}
    if request_id:
        body["request_id"] = request_id
    return orjson.dumps(body)


def error_from_gateway(error: GatewayError, request_id: str | None = None) -> bytes:
    return error_body(error.status, error.message, request_id)

