"""Cohere v2 stream events -> OpenAI `chat.completion.chunk`s.

Events (each `event: <type>` with `data: {"type": <type>, ...}`): message-start, content-start,
content-delta, content-end, tool-plan-delta, tool-call-start, tool-call-delta, tool-call-end,
citation-start, citation-end, message-end (finish reason and usage). Unknown ones are no-ops.
"""

from __future__ import annotations

from typing import Any

from cohere_provider.response import finish_reason, usage_from
from gateway.core.errors import UpstreamError
from gateway.providers.streaming import ChunkWriter, EventStreamTranslator, SSEEvent


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _message(data: dict[str, Any]) -> dict[str, Any]:
    return _dict(_dict(data.get("delta")).get("message"))


class CohereStreamTranslator(EventStreamTranslator):
    def __init__(self, client_wants_usage: bool, created: int, model: str) -> None:
        super().__init__(ChunkWriter("chatcmpl-cohere", model, created), client_wants_usage, "cohere")
        self._calls = 0

    def on_event(self, event: SSEEvent) -> bytes:
        data = event.json()
        if not isinstance(data, dict):
            return b""
        kind = data.get("type") or event.event
        if kind == "message-start":
            self.writer.id = str(data.get("id") or self.writer.id)
            return self.writer.role()
        if kind == "content-delta":
            content = _message(data).get("content")
            text = content.get("text") if isinstance(content, dict) else None
            return self.writer.content(text) if isinstance(text, str) and text else b""
        if kind == "tool-call-start":
            call = _message(data).get("tool_calls")
            if not isinstance(call, dict):
                return b""
            function = _dict(call.get("function"))
            k, self._calls = self._calls, self._calls + 1
            return self.writer.tool_call_start(k, str(call.get("id") or ""), str(function.get("name") or ""),
                                               str(function.get("arguments") or ""))
        if kind == "tool-call-delta":
            fragment = _dict(_dict(_message(data).get("tool_calls")).get("function")).get("arguments")
            if isinstance(fragment, str) and fragment and self._calls:
                return self.writer.tool_call_arguments(self._calls - 1, fragment)
            return b""
        if kind == "message-end":
            delta = _dict(data.get("delta"))
            usage = usage_from(delta.get("usage"))
            if usage is not None:
                self.usage = usage
            if delta.get("finish_reason") == "ERROR":
                self.fail(UpstreamError(str(delta.get("error") or "cohere failed mid-answer"), status=502,
                                        type="server_error", code="upstream_error"))
                return b""
            return self.writer.finish(finish_reason(delta.get("finish_reason"))) + self.end()
        return b""  # content-start/end, tool-plan-delta, tool-call-end, citations
