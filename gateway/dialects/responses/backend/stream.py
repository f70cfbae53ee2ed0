"""Responses events -> chat `chat.completion.chunk`s, for a deployment that speaks only the Responses API.

Function calls are numbered by their own counter, as chat's are. Reasoning summaries and text go
out as `reasoning_content` deltas (vLLM's and DeepSeek's field), which chat clients that know
them show and the rest ignore. The stream is complete only at `response.completed` or
`response.incomplete`; `response.failed` and `error` end it with the error in-band.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.dialects.responses.backend.response import failure, finish_reason, usage_of
from gateway.providers.streaming import ChunkWriter, EventStreamTranslator, SSEEvent

JSON = dict[str, Any]


class ResponsesEventTranslator(EventStreamTranslator):
    def __init__(self, client_wants_usage: bool, created: int, model: str = "") -> None:
        super().__init__(ChunkWriter("", model, created), client_wants_usage, "responses")
        self._calls: dict[str, int] = {}  # function call item id -> chat tool call index
        self._role_sent = False

    def on_event(self, event: SSEEvent) -> bytes:
        data = event.json()
        if not isinstance(data, dict):
            return b""
        kind = data.get("type") or event.event
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        # Event types this translator does not know (built-in tool progress, ...) say nothing to chat.
        return handler(self, data) if handler is not None else b""

    def _role(self) -> bytes:
        if self._role_sent:
            return b""
        self._role_sent = True
        return self.writer.role()

    def _created(self, data: JSON) -> bytes:
        response = data.get("response")
        if isinstance(response, dict):
            self.writer.id = str(response.get("id") or self.writer.id)
            self.writer.model = str(response.get("model") or self.writer.model)
        return self._role()

    def _text(self, data: JSON) -> bytes:
        delta = data.get("delta")
        return self._role() + self.writer.content(delta) if isinstance(delta, str) and delta else b""

    def _refusal(self, data: JSON) -> bytes:
        delta = data.get("delta")
        return self._role() + self.writer.delta({"refusal": delta}) if isinstance(delta, str) and delta else b""

    def _reasoning(self, data: JSON) -> bytes:
        delta = data.get("delta")
        if not isinstance(delta, str) or not delta:
            return b""
        return self._role() + self.writer.delta({"reasoning_content": delta})

    def _item_added(self, data: JSON) -> bytes:
        item = data.get("item")
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return b""
        k = len(self._calls)
        self._calls[str(item.get("id") or k)] = k
        arguments = given if isinstance(given := item.get("arguments"), str) else ""
        return self._role() + self.writer.tool_call_start(k, str(item.get("call_id") or ""),
                                                          str(item.get("name") or ""), arguments)

    def _arguments(self, data: JSON) -> bytes:
        k = self._calls.get(str(data.get("item_id")))
        delta = data.get("delta")
        if k is None or not isinstance(delta, str) or not delta:
            return b""
        return self.writer.tool_call_arguments(k, delta)

    def _finished(self, data: JSON) -> bytes:
        response = given if isinstance(given := data.get("response"), dict) else {}
        self.usage = usage_of(response.get("usage"))
        return self._role() + self.writer.finish(finish_reason(response, bool(self._calls))) + self.end()

    def _failed(self, data: JSON) -> bytes:
        response = given if isinstance(given := data.get("response"), dict) else {}
        self.fail(failure({**response, "status": "failed"}))
        return b""

    def _error_event(self, data: JSON) -> bytes:
        self.fail(failure({"error": data}))
        return b""

_HANDLERS: dict[str, Callable[[ResponsesEventTranslator, JSON], bytes]] = {
    "response.created": ResponsesEventTranslator._created,
    "response.output_text.delta": ResponsesEventTranslator._text,
    "response.refusal.delta": ResponsesEventTranslator._refusal,
    "response.reasoning_summary_text.delta": ResponsesEventTranslator._reasoning,
    "response.reasoning_text.delta": ResponsesEventTranslator._reasoning,
    "response.output_item.added": ResponsesEventTranslator._item_added,
    "response.function_call_arguments.delta": ResponsesEventTranslator._arguments,
    "response.completed": ResponsesEventTranslator._finished,
    "response.incomplete": ResponsesEventTranslator._finished,
    "response.failed": ResponsesEventTranslator._failed,
    "error": ResponsesEventTranslator._error_event,
}
