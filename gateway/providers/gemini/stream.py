"""Gemini's `streamGenerateContent?alt=sse` -> OpenAI `chat.completion.chunk`s.

Each event is a whole GenerateContentResponse holding the next parts. Function calls arrive
whole, so each becomes one tool-call delta with all its arguments. There is no end event: the
answer is complete once every candidate has a finishReason, and the stream then just ends.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.providers.gemini.errors import map_error
from gateway.providers.gemini.response import call_id, finish_reason, parts_of, usage_from, visible_text
from gateway.providers.streaming import ChunkWriter, EventStreamTranslator, SSEEvent


class GeminiStreamTranslator(EventStreamTranslator):
    def __init__(self, client_wants_usage: bool, created: int, model: str) -> None:
        super().__init__(ChunkWriter("chatcmpl-gemini", model, created), client_wants_usage, "gemini")
        self._calls: dict[int, int] = {}  # candidate index -> tool calls so far
        self._open: set[int] = set()
        self._finished: set[int] = set()

    def on_event(self, event: SSEEvent) -> bytes:
        response = event.json()
        if not isinstance(response, dict):
            return b""
        error = response.get("error")
        if isinstance(error, dict):
            # [unverified] a failure after the stream started comes as a frame with Google's error object.
            code = error.get("code")
            status = code if isinstance(code, int) and not isinstance(code, bool) and code >= 400 else 500
            self.fail(map_error(status, {}, orjson.dumps(response), "gemini"))
            return b""
        if response.get("responseId"):
            self.writer.id = str(response["responseId"])
        if response.get("modelVersion"):
            self.writer.model = str(response["modelVersion"])
        usage = usage_from(response.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        out: list[bytes] = []
        candidates = response.get("candidates")
        for position, candidate in enumerate(candidates if isinstance(candidates, list) else ()):
            if isinstance(candidate, dict):
                index = candidate["index"] if isinstance(candidate.get("index"), int) else position
                out.append(self._candidate(index, candidate))
        feedback = response.get("promptFeedback")
        if not candidates and isinstance(feedback, dict) and feedback.get("blockReason"):
            # The prompt was blocked: no candidate will ever come.
            out.append(self._opened(0) + self.writer.finish("content_filter"))
            self._finished.add(0)
        if self._open and self._open <= self._finished:
            self.complete()
        return b"".join(out)

    def _opened(self, index: int) -> bytes:
        if index in self._open:
            return b""
        self._open.add(index)
        return self.writer.role(index)

    def _candidate(self, index: int, candidate: dict[str, Any]) -> bytes:
        if index in self._finished:
            return b""
        out = [self._opened(index)]
        for part in parts_of(candidate):
            text = visible_text(part)
            if text:
                out.append(self.writer.content(text, index))
            call = part.get("functionCall")
            if isinstance(call, dict):
                k = self._calls.get(index, 0)
                self._calls[index] = k + 1
                arguments = orjson.dumps(call.get("args") or {}).decode()
                out.append(self.writer.tool_call_start(k, call_id(part, call, k), str(call.get("name") or ""),
                                                       arguments, index))
        reason = candidate.get("finishReason")
        if reason:
            self._finished.add(index)
            out.append(self.writer.finish(finish_reason(reason, index in self._calls), index))
        return b"".join(out)
