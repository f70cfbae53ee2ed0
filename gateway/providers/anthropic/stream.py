"""Anthropic's stream events -> OpenAI `chat.completion.chunk`s.

Tool calls are numbered by their own counter, as OpenAI's are, not by Anthropic's block index
(a text block before them takes index 0 there). `message_delta.usage` is cumulative: the latest
counts win, never a sum.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.providers.anthropic.errors import error_from_event
from gateway.providers.anthropic.request import JSON_TOOL
from gateway.providers.anthropic.response import counts_of, finish_reason, usage_from
from gateway.providers.streaming import KEEPALIVE, ChunkWriter, EventStreamTranslator, SSEEvent


class AnthropicStreamTranslator(EventStreamTranslator):
    def __init__(self, client_wants_usage: bool, created: int, model: str = "", json_mode: bool = False) -> None:
        super().__init__(ChunkWriter("", model, created), client_wants_usage, "anthropic")
        self._counts: dict[str, int] = {}
        self._tool_of_block: dict[int, int] = {}
        # JSON mode (request.py's JSON_TOOL): the forced tool's input streams as the message's text.
        self._json_mode = json_mode
        self._json_blocks: set[int] = set()
        self._finished = False
        # Deltas relayed: until message_delta has the real count, a cancelled stream is charged
        # at least one output token per delta (message_start reports only the first ones).
        self._deltas = 0
        self._final = False

    def on_event(self, event: SSEEvent) -> bytes:
        data = event.json()
        if not isinstance(data, dict):
            return b""
        kind = data.get("type") or event.event
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        # New event types may appear at any time (Anthropic's versioning policy): they are no-ops.
        return handler(self, data) if handler is not None else b""

    def _count(self, usage: Any) -> None:
        self._counts.update(counts_of(usage))
        self.usage = usage_from(self._counts)

    def _relayed(self, out: bytes) -> bytes:
        self._deltas += 1
        if not self._final and self.usage is not None and self.usage.completion_tokens < self._deltas:
            self.usage.completion_tokens = self._deltas
        return out

    def _message_start(self, data: dict[str, Any]) -> bytes:
        message = data.get("message")
        if not isinstance(message, dict):
            return b""
        self.writer.id = str(message.get("id") or "")
        self.writer.model = str(message.get("model") or self.writer.model)
        self._count(message.get("usage"))
        return self.writer.role()

    def _block_start(self, data: dict[str, Any]) -> bytes:
        block = data.get("content_block")
        index = data.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            return b""
        if block.get("type") == "text" and block.get("text"):
            return self.writer.content(str(block["text"]))
        if self._json_mode and block.get("type") == "tool_use" and block.get("name") == JSON_TOOL:
            self._json_blocks.add(index)
            preset = block.get("input")
            return self.writer.content(_dumps(preset)) if preset else b""
        if block.get("type") == "tool_use":
            k = self._tool_of_block[index] = len(self._tool_of_block)
            # Streams start tool_use with `input: {}` and send the input as JSON fragments.
            preset = block.get("input")
            arguments = "" if not preset else _dumps(preset)
            return self.writer.tool_call_start(k, str(block.get("id") or ""), str(block.get("name") or ""), arguments)
        return b""  # thinking, server tools: nothing OpenAI's stream can carry

    def _block_delta(self, data: dict[str, Any]) -> bytes:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return b""
        if delta.get("type") == "text_delta" and delta.get("text"):
            return self._relayed(self.writer.content(str(delta["text"])))
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            index = data.get("index")
            if index in self._json_blocks:
                return self._relayed(self.writer.content(str(delta["partial_json"])))
            k = self._tool_of_block.get(index) if isinstance(index, int) else None
            if k is not None:
                return self._relayed(self.writer.tool_call_arguments(k, str(delta["partial_json"])))
        return b""  # thinking_delta, signature_delta, citations_delta

    def _message_delta(self, data: dict[str, Any]) -> bytes:
        self._final = True
        self._count(data.get("usage"))
        delta = data.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if stop_reason is None or self._finished:
            return b""
        self._finished = True
        return self.writer.finish(finish_reason(stop_reason, self._json_mode))

    def _message_stop(self, data: dict[str, Any]) -> bytes:
        out = b"" if self._finished else self.writer.finish("stop")
        self._finished = True
        return out + self.end()

    def _ping(self, data: dict[str, Any]) -> bytes:
        return KEEPALIVE

    def _on_error(self, data: dict[str, Any]) -> bytes:
        self.fail(error_from_event(data.get("error")))
        return b""


def _nothing(self: AnthropicStreamTranslator, data: dict[str, Any]) -> bytes:
    return b""


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


_HANDLERS = {
    "message_start": AnthropicStreamTranslator._message_start,
    "content_block_start": AnthropicStreamTranslator._block_start,
    "content_block_delta": AnthropicStreamTranslator._block_delta,
    "content_block_stop": _nothing,
    "message_delta": AnthropicStreamTranslator._message_delta,
    "message_stop": AnthropicStreamTranslator._message_stop,
    "ping": AnthropicStreamTranslator._ping,
    "error": AnthropicStreamTranslator._on_error,
}
