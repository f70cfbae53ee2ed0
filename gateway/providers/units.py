"""What the non-text endpoints' answers are billed by, read from OpenAI-shaped answers.

Images by count and size; transcriptions and translations by the seconds of audio (whisper's
`usage: {type: duration}` or `duration` of verbose_json) or by tokens (`usage: {type: tokens}`);
speech by the characters of its input; rerank by searches (Cohere's `meta.billed_units`, else one
per 100 documents, as Cohere counts them) or tokens (Jina's and vLLM's `usage.total_tokens`);
moderations are free.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.core.types import Endpoint, Usage

DEFAULT_IMAGE_SIZE = "1024x1024"
DOCUMENTS_PER_SEARCH = 100
# Formats whose answer is text, not JSON.
TEXT_FORMATS = {"text": "text/plain; charset=utf-8", "srt": "text/plain; charset=utf-8",
                "vtt": "text/vtt; charset=utf-8"}


def units_usage(endpoint: Endpoint, body: dict[str, Any], answer: Any) -> Usage:
    if endpoint in (Endpoint.IMAGES, Endpoint.IMAGE_EDITS):
        return _images(body, answer)
    if endpoint in (Endpoint.TRANSCRIPTIONS, Endpoint.TRANSLATIONS):
        return _audio(answer)
    if endpoint is Endpoint.SPEECH:
        return speech_usage(body)
    if endpoint is Endpoint.RERANK:
        return _rerank(body, answer)
    return Usage()


def speech_usage(body: dict[str, Any]) -> Usage:
    text = body.get("input")
    return Usage(characters=len(text) if isinstance(text, str) else 0)


def _images(body: dict[str, Any], answer: Any) -> Usage:
    data = answer.get("data") if isinstance(answer, dict) else None
    size = body.get("size")
    usage = Usage(images=len(data) if isinstance(data, list) else 0,
                  image_size=size if isinstance(size, str) and size != "auto" else DEFAULT_IMAGE_SIZE)
    tokens = answer.get("usage") if isinstance(answer, dict) else None
    if isinstance(tokens, dict):  # gpt-image models bill tokens too
        usage.prompt_tokens = _int(tokens.get("input_tokens"))
        usage.completion_tokens = _int(tokens.get("output_tokens"))
    return usage


def _audio(answer: Any) -> Usage:
    if not isinstance(answer, dict):  # a text format: no figures to read
        return Usage(estimated=True)
    usage = answer.get("usage")
    if isinstance(usage, dict) and usage.get("type") == "tokens":
        return Usage(prompt_tokens=_int(usage.get("input_tokens")), completion_tokens=_int(usage.get("output_tokens")))
    seconds = usage.get("seconds") if isinstance(usage, dict) else answer.get("duration")
    try:
        return Usage(audio_seconds=Decimal(str(seconds)) if seconds is not None else Decimal(0),
                     estimated=seconds is None)
    except InvalidOperation:
        return Usage(estimated=True)


def _rerank(body: dict[str, Any], answer: Any) -> Usage:
    answer = answer if isinstance(answer, dict) else {}
    meta = answer.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    if isinstance(billed, dict) and billed.get("search_units") is not None:
        return Usage(searches=_int(billed.get("search_units")))
    usage = answer.get("usage")
    if isinstance(usage, dict) and usage.get("total_tokens") is not None:
        return Usage(prompt_tokens=_int(usage.get("total_tokens")))
    documents = body.get("documents")
    count = len(documents) if isinstance(documents, list) else 0
    return Usage(searches=max(1, math.ceil(count / DOCUMENTS_PER_SEARCH)), estimated=True)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class BinaryRelay:
    """The stream translator of an answer that is bytes (speech): passed on as they arrive."""

    __slots__ = ("done", "usage")

    def __init__(self, usage: Usage) -> None:
        self.usage: Usage | None = usage
        self.done = False

    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        self.done = True
        return b""
