"""Gemini GenerateContentResponse -> OpenAI chat.completion; finish reasons and usage. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.types import Usage
from gateway.providers.gemini.request import SIGNATURE_SEPARATOR
from gateway.providers.streaming import openai_usage

_FILTERED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})


def finish_reason(reason: Any, called_functions: bool) -> str:
    if not isinstance(reason, str):
        reason = ""
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    # STOP with function calls in the answer is OpenAI's tool_calls; LANGUAGE, OTHER: a plain stop.
    return "tool_calls" if called_functions else "stop"


def usage_from(metadata: Any) -> Usage | None:
    """Cached tokens are inside `promptTokenCount` already; thoughts are billed as output."""
    if not isinstance(metadata, dict):
        return None

    def count(name: str) -> int:
        value = metadata.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    return Usage(
        prompt_tokens=count("promptTokenCount"),
        completion_tokens=count("candidatesTokenCount") + count("thoughtsTokenCount"),
        cached_tokens=count("cachedContentTokenCount"),
    )


def call_id(part: dict[str, Any], call: dict[str, Any], k: int) -> str:
    """Gemini's own call id when it gives one, else a made-up one; plus the thought signature."""
    given = call.get("id")
    base = given if isinstance(given, str) and given else f"call_{k}"
    signature = part.get("thoughtSignature")
    return f"{base}{SIGNATURE_SEPARATOR}{signature}" if isinstance(signature, str) and signature else base


def parts_of(candidate: Any) -> list[dict[str, Any]]:
    content = candidate.get("content") if isinstance(candidate, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def visible_text(part: dict[str, Any]) -> str | None:
    """A part's answer text; None for thoughts and non-text parts."""
    text = part.get("text")
    return text if isinstance(text, str) and not part.get("thought") else None


def from_gemini(response: dict[str, Any], model: str, created: int) -> tuple[dict[str, Any], Usage | None]:
    choices = []
    candidates = response.get("candidates")
    for position, candidate in enumerate(candidates if isinstance(candidates, list) else ()):
        if not isinstance(candidate, dict):
            continue
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in parts_of(candidate):
            text = visible_text(part)
            if text is not None:
                texts.append(text)
            call = part.get("functionCall")
            if isinstance(call, dict):
                calls.append({
                    "id": call_id(part, call, len(calls)),
                    "type": "function",
                    "function": {"name": call.get("name"), "arguments": orjson.dumps(call.get("args") or {}).decode()},
                })
        text = "".join(texts)
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None,
                                   "refusal": None}
        if calls:
            message["tool_calls"] = calls
        index = candidate.get("index") if isinstance(candidate.get("index"), int) else position
        choices.append({"index": index, "message": message, "logprobs": None,
                        "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls))})
    if not choices:
        # The prompt itself was blocked (`promptFeedback.blockReason`): nothing was generated.
        choices.append({"index": 0, "message": {"role": "assistant", "content": "", "refusal": None},
                        "logprobs": None, "finish_reason": "content_filter"})
    usage = usage_from(response.get("usageMetadata"))
    body: dict[str, Any] = {
        "id": str(response.get("responseId") or "chatcmpl-gemini"),
        "object": "chat.completion",
        "created": created,
        "model": str(response.get("modelVersion") or model),
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = openai_usage(usage)
    return body, usage
