"""What a request will use, guessed before it is sent: the amount admission reserves.

Prompt tokens are counted as characters / 4 (OpenAI's rule of thumb for English) over the text
the model reads: message contents and text parts, tool-call arguments, the prompt or the input.
Images, audio and tool definitions are not counted. A tokenizer would be closer but costs far
more than the rest of admission; the estimate only sizes the reservation, and settle replaces
it by the real usage. Output is `max_completion_tokens` or `max_tokens` (times `n`), else a
configured default: the upstream cannot exceed it when the client set it.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from gateway.accounting.pricing import charge, units_charge
from gateway.config.file import Price
from gateway.core.types import TEXT_FIELD, Endpoint, Usage

CHARS_PER_TOKEN = 4
# Each chat message costs a few tokens of framing (role, separators) besides its content.
TOKENS_PER_MESSAGE = 4
MAX_N = 128
MICRO = Decimal(1_000_000)


def prompt_tokens(body: dict[str, Any], endpoint: Endpoint) -> int:
    if endpoint is Endpoint.CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list):
            return 0
        chars = 0
        for message in messages:
            if isinstance(message, dict):
                chars += _message_chars(message)
        return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)
    return _text_tokens(body.get(TEXT_FIELD.get(endpoint, "input")))


def output_tokens(body: dict[str, Any], endpoint: Endpoint, default: int) -> int:
    if endpoint not in (Endpoint.CHAT, Endpoint.COMPLETIONS):
        return 0
    cap = _positive_int(body.get("max_completion_tokens")) or _positive_int(body.get("max_tokens")) or default
    return cap * min(_positive_int(body.get("n")) or 1, MAX_N)


def planned_units(body: dict[str, Any], endpoint: Endpoint) -> Usage | None:
    """What an image, speech or rerank request will be billed by, known before it is sent (the
    images asked for, the characters to speak, the searches); audio length is not known."""
    if endpoint in (Endpoint.IMAGES, Endpoint.IMAGE_EDITS):
        n = body.get("n")
        count = int(n) if isinstance(n, str) and n.isdigit() else _positive_int(n) or 1
        size = body.get("size")
        return Usage(images=min(count, MAX_N), image_size=size if isinstance(size, str) else "1024x1024")
    if endpoint is Endpoint.SPEECH and isinstance(body.get("input"), str):
        return Usage(characters=len(body["input"]))
    if endpoint is Endpoint.RERANK and isinstance(body.get("documents"), list):
        return Usage(searches=max(1, math.ceil(len(body["documents"]) / 100)))
    return None


def micro_usd(price: Price | None, prompt: int, output: int, units: Usage | None = None) -> int:
    """The cost in whole micro-dollars, rounded up; 0 when no price is known."""
    if price is None:
        return 0
    return to_micro(charge(price, prompt, output) + (units_charge(price, units) if units is not None else 0))


def to_micro(usd: Decimal) -> int:
    return math.ceil(usd * MICRO)


def _message_chars(message: dict[str, Any]) -> int:
    chars = 0
    content = message.get("content")
    if isinstance(content, str):
        chars += len(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                chars += len(part["text"])
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            chars += len(function["arguments"])
    return chars


def _text_tokens(value: object) -> int:
    if isinstance(value, str):
        return math.ceil(len(value) / CHARS_PER_TOKEN)
    if isinstance(value, list):
        # A list of strings, of token ids, or of lists of token ids.
        return sum(1 if isinstance(item, int) else _text_tokens(item) for item in value)
    return 0


def _positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None
