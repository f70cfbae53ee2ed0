"""OpenAI `chat.completion.chunk` SSE -> Anthropic Messages stream events. Pure.

The order Anthropic's clients expect: message_start, then for each content block
content_block_start / content_block_delta… / content_block_stop (one block open at a time,
numbered from 0), then message_delta (stop reason and usage) and message_stop. OpenAI only
knows the token counts at the end, so message_start says 0 and message_delta has the totals
(Anthropic's clients take input counts from message_delta when it has them).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.dialects.anthropic.response import anthropic_usage, error_type, stop_reason
from gateway.providers.streaming import SSEParser


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


class MessagesStreamTranslator:
    def __init__(self, model: str = "") -> None:
        self._parser = SSEParser()
        self._model = model
        self._started = False
        self._block: int | None = None  # the open block's index
        self._text_open = False
        self._blocks = 0
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> block index
        self._stop_reason: str | None = None
        self._usage: Any = None
        self.done = False

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        for sse in self._parser.feed(data):
            if self.done:
                break
            out.append(self._on_data(sse.data))
        return b"".join(out)

    def finish(self) -> bytes:
        """The end of the body: whatever is left, and the closing events if [DONE] never came."""
        out = [self._on_data(sse.data) for sse in self._parser.flush() if not self.done]
        if not self.done:
            out.append(self._end())
        return b"".join(out)

    def fail(self, error: Any) -> bytes:
        """An in-band error (an OpenAI error object): Anthropic's `error` event, which ends the stream."""
        return b"" if self.done or not isinstance(error, dict) else self._error(error)

    def _on_data(self, data: str) -> bytes:
        if data.strip() == "[DONE]":
            return self._end()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return b""
        if not isinstance(chunk, dict):
            return b""
        if isinstance(chunk.get("error"), dict):
            return self._error(chunk["error"])
        out = [self._start(chunk)]
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            # The gateway asked for one choice; any other index is not the client's answer.
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                out.append(self._choice(choice))
        return b"".join(out)

    def _start(self, chunk: dict[str, Any]) -> bytes:
        if self._started:
            return b""
        self._started = True
        message: dict[str, Any] = {
            "id": str(chunk.get("id") or "msg_gateway"),
            "type": "message",
            "role": "assistant",
            "model": str(chunk.get("model") or self._model),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return event("message_start", {"message": message})

    def _open(self, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._block = self._blocks
        self._blocks += 1
        return out + event("content_block_start", {"index": self._block, "content_block": block})

    def _close(self) -> bytes:
        if self._block is None:
            return b""
        index, self._block, self._text_open = self._block, None, False
        return event("content_block_stop", {"index": index})

    def _choice(self, choice: dict[str, Any]) -> bytes:
        out: list[bytes] = []
        delta: dict[str, Any] = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
        text = delta.get("content")
        if isinstance(text, str) and text:
            if not self._text_open:
                out.append(self._open({"type": "text", "text": ""}))
                self._text_open = True
            out.append(event("content_block_delta",
                             {"index": self._block, "delta": {"type": "text_delta", "text": text}}))
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict):
                out.append(self._tool_call(call))
        if choice.get("finish_reason"):
            out.append(self._close())
            self._stop_reason = stop_reason(choice["finish_reason"])
        return b"".join(out)

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        out = b""
        k = call["index"] if isinstance(call.get("index"), int) else 0
        function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
        if k not in self._tools:
            out = self._open({"type": "tool_use", "id": str(call.get("id") or f"toolu_{k}"),
                              "name": str(function.get("name") or ""), "input": {}})
            self._tools[k] = self._blocks - 1
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out += event("content_block_delta", {"index": self._tools[k],
                                                 "delta": {"type": "input_json_delta", "partial_json": arguments}})
        return out

    def _end(self) -> bytes:
        self.done = True
        out = self._start({}) + self._close()
        usage = anthropic_usage(self._usage)
        out += event("message_delta", {
            "delta": {"stop_reason": self._stop_reason or "end_turn", "stop_sequence": None},
            "usage": usage,
        })
        return out + event("message_stop", {})

    def _error(self, error: dict[str, Any]) -> bytes:
        self.done = True
        status = {"overloaded": 503, "rate_limit_exceeded": 429, "upstream_timeout": 504}.get(
            str(error.get("code")), 500)
        message = error.get("message") if isinstance(error.get("message"), str) else "The stream failed."
        return event("error", {"error": {"type": error_type(status), "message": message}})
