"""Usage for an answer whose upstream reported none: estimated, and marked so (`Usage.estimated`).

The prompt is estimated the way admission sizes its reservation (characters / 4, see
gateway/accounting/limits/estimate.py). A unary completion is estimated from the text it carries; a stream
from the content deltas relayed, counted by a byte search so the hot path stays cheap: an
OpenAI-compatible server sends about one token per delta.
"""

from __future__ import annotations

import math
import re
from typing import Any

from gateway.accounting.limits.estimate import CHARS_PER_TOKEN, prompt_tokens
from gateway.core.types import Endpoint, Usage

# A delta that carries text (not the empty one of role and finish chunks), in compact JSON as
# OpenAI, vLLM, Ollama and the SDKs' servers write it. One regex scan measured as cheap as three
# bytes.count calls, and it counts every kind at once.
_FILLED_DELTA = re.compile(rb'"(?:content|text|arguments)":"(?!")')


def count_deltas(events: bytes) -> int:
    """Text-carrying deltas in a run of OpenAI SSE events."""
    return len(_FILLED_DELTA.findall(events))


def estimated_usage(body: dict[str, Any], endpoint: Endpoint, completion_tokens: int) -> Usage:
    return Usage(prompt_tokens=prompt_tokens(body, endpoint), completion_tokens=completion_tokens, estimated=True)


def completion_tokens(response: Any) -> int:
    """From a unary OpenAI answer: characters / 4 over every choice's text and tool-call arguments."""
    if not isinstance(response, dict) or not isinstance(response.get("choices"), list):
        return 0
    chars = 0
    for choice in response["choices"]:
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):
            chars += len(choice["text"])
        message = choice.get("message")
        if isinstance(message, dict):
            if isinstance(message.get("content"), str):
                chars += len(message["content"])
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    chars += len(function["arguments"])
    return math.ceil(chars / CHARS_PER_TOKEN)
