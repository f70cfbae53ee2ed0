"""Anthropic Message -> OpenAI chat.completion, and the meaning of its stop reasons and usage. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.types import Usage
from gateway.providers.anthropic.request import JSON_TOOL
from gateway.providers.streaming import openai_usage

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",  # a server-tool turn the client may continue
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any, json_mode: bool = False) -> str:
    if json_mode and stop_reason == "tool_use":
        return "stop"  # the forced JSON tool: its input is the answer
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


COUNTS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def counts_of(usage: Any) -> dict[str, int]:
    """The token counts an Anthropic usage object carries (a stream's message_delta may omit some)."""
    if not isinstance(usage, dict):
        return {}
    return {name: value for name in COUNTS
            if isinstance(value := usage.get(name), int) and not isinstance(value, bool)}


def usage_from(counts: dict[str, int]) -> Usage:
    """OpenAI's convention from Anthropic's: `input_tokens` there excludes the cache reads and writes."""
    read = counts.get("cache_read_input_tokens", 0)
    written = counts.get("cache_creation_input_tokens", 0)
    return Usage(
        prompt_tokens=counts.get("input_tokens", 0) + read + written,
        completion_tokens=counts.get("output_tokens", 0),
        cached_tokens=read,
    )


def from_anthropic(message: dict[str, Any], created: int, json_mode: bool = False) -> tuple[dict[str, Any], Usage]:
    """`json_mode`: the request asked for JSON mode, so the forced JSON tool's input is the text."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    blocks = message.get("content")
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif json_mode and block.get("type") == "tool_use" and block.get("name") == JSON_TOOL:
            texts.append(orjson.dumps(block.get("input") or {}).decode())
        elif block.get("type") == "tool_use":
            tool_calls.append({
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()},
            })
        # thinking, redacted_thinking and server-tool blocks have no place in OpenAI's message.
    text = "".join(texts)
    reply: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None,
                             "refusal": None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    usage = usage_from(counts_of(message.get("usage")))
    body = {
        "id": message.get("id") or "",
        "object": "chat.completion",
        "created": created,
        "model": message.get("model") or "",
        "choices": [{"index": 0, "message": reply, "logprobs": None,
                     "finish_reason": finish_reason(message.get("stop_reason"), json_mode)}],
        "usage": openai_usage(usage),
    }
    return body, usage
