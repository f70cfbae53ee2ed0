"""Bedrock Converse response -> OpenAI chat.completion, and the meaning of its stop reasons and usage. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.types import Usage
from gateway.providers.streaming import openai_usage

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def usage_from(usage: Any) -> Usage:
    """OpenAI's convention: Converse's `inputTokens` leaves out the cache reads and writes."""
    if not isinstance(usage, dict):
        return Usage()

    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    read, written = count("cacheReadInputTokens"), count("cacheWriteInputTokens")
    return Usage(prompt_tokens=count("inputTokens") + read + written, completion_tokens=count("outputTokens"),
                 cached_tokens=read)


def from_converse(response: dict[str, Any], reply_id: str, model: str, created: int) -> tuple[dict[str, Any], Usage]:
    output = response.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    blocks = message.get("content") if isinstance(message, dict) else None
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            tool_calls.append({"id": use.get("toolUseId"), "type": "function",
                               "function": {"name": use.get("name"),
                                            "arguments": orjson.dumps(use.get("input") or {}).decode()}})
    reply_message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None,
                                     "refusal": None}
    if tool_calls:
        reply_message["tool_calls"] = tool_calls
    usage = usage_from(response.get("usage"))
    reply = {
        "id": reply_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": reply_message, "logprobs": None,
                     "finish_reason": finish_reason(response.get("stopReason"))}],
        "usage": openai_usage(usage),
    }
    return reply, usage
