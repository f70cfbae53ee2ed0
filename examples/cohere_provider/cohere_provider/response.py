"""Cohere v2 chat response -> OpenAI chat.completion. Pure."""

from __future__ import annotations

from typing import Any

from gateway.core.types import Usage
from gateway.providers.streaming import openai_usage

FINISH_REASONS = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls",
                  "ERROR": "stop", "TIMEOUT": "length"}


def finish_reason(reason: Any) -> str:
    return FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"


def usage_from(usage: Any) -> Usage | None:
    """`tokens` counts what the model saw and wrote; `billed_units` is what Cohere charges, if it differs."""
    if not isinstance(usage, dict):
        return None
    counts = usage.get("tokens") if isinstance(usage.get("tokens"), dict) else usage.get("billed_units")
    if not isinstance(counts, dict):
        return None
    cached = usage.get("cached_tokens")
    return Usage(prompt_tokens=int(counts.get("input_tokens") or 0),
                 completion_tokens=int(counts.get("output_tokens") or 0),
                 cached_tokens=cached if isinstance(cached, int) else 0)


def from_cohere(response: dict[str, Any], model: str, created: int) -> tuple[dict[str, Any], Usage | None]:
    message: dict[str, Any] = response["message"] if isinstance(response.get("message"), dict) else {}
    content, tool_calls = message.get("content"), message.get("tool_calls")
    text = "".join(str(part.get("text", "")) for part in (content if isinstance(content, list) else ())
                   if isinstance(part, dict) and part.get("type") == "text")
    calls = [{"id": c.get("id"), "type": "function",
              "function": {"name": c["function"].get("name"), "arguments": c["function"].get("arguments") or "{}"}}
             for c in (tool_calls if isinstance(tool_calls, list) else ())
             if isinstance(c, dict) and isinstance(c.get("function"), dict)]
    reply: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None, "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    usage = usage_from(response.get("usage"))
    body: dict[str, Any] = {
        "id": str(response.get("id") or "chatcmpl-cohere"), "object": "chat.completion", "created": created,
        "model": model,
        "choices": [{"index": 0, "message": reply, "finish_reason": finish_reason(response.get("finish_reason")),
                     "logprobs": None}],
    }
    if usage is not None:
        body["usage"] = openai_usage(usage)
    return body, usage
