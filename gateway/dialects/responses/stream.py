"""Neutral chat chunks -> the Responses API's event stream. Pure.

The order clients check (the openai SDK's stream accumulator refuses anything else):
`response.created`, `response.in_progress`, then per output item `response.output_item.added`,
its content (`response.content_part.added`, `response.output_text.delta`... `.done`,
`response.content_part.done`; or `response.function_call_arguments.delta`... `.done`; or
`response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`... `.done`,
`response.reasoning_summary_part.done`), `response.output_item.done`; at the end one of
`response.completed`, `response.incomplete` (length, content filter) or `response.failed` (an
in-band error, or a stream cut before the answer was complete), carrying the whole response.
Every event has a `sequence_number` counted from 0. The stream has no `[DONE]`.

One item is open at a time, except function calls: a model may stream several, so they stay
open until the answer moves on to text or ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.dialects.responses.request import ResponsesRequest
from gateway.dialects.responses.response import (
    REASONING_FIELDS,
    envelope,
    finish_status,
    function_call_item,
    item_id,
    message_item,
    reasoning_item,
    refusal_part,
    responses_usage,
    text_part,
)
from gateway.providers.streaming import SSEParser

JSON = dict[str, Any]
# In-band error codes a client may act on; anything else is a server error.
ERROR_CODES = frozenset({"rate_limit_exceeded", "server_error"})
TRUNCATED = "The upstream stream ended before the answer was complete."
# Delta fields that make a chunk more than text for the open text part.
_NOT_TEXT = ("reasoning_content", "reasoning", "refusal", "tool_calls")


@dataclass(slots=True)
class _Open:
    """An output item being streamed."""

    index: int
    id: str
    kind: str  # "message", "reasoning" or "function_call"
    parts: list[JSON] = field(default_factory=list)  # a message's finished parts
    part: str | None = None  # the open part's type: "output_text" or "refusal"
    text: str = ""  # the open part's (or the reasoning summary's) text so far
    call_id: str = ""
    name: str = ""


class ResponsesStreamWriter:
    """Feed it the chat stream's bytes (`feed`, then `finish`), or parsed chunks (`chunk`, `end`).

    Once finished, `response` is the final response object (for the store and the ledger).
    """

    def __init__(self, request: ResponsesRequest, response_id: str, created_at: int) -> None:
        self.request = request
        self.response_id = response_id
        self.created_at = created_at
        self.response: JSON | None = None
        self._parser = SSEParser()
        self._sequence = 0
        self._started = False
        self._output: list[JSON] = []  # finished items, by output index
        self._items = 0  # output indexes handed out
        self._open: _Open | None = None  # the open message or reasoning item
        self._calls: dict[int, _Open] = {}  # open function calls by the chat tool call index
        self._finish_reason: Any = None
        self._usage: Any = None

    @property
    def done(self) -> bool:
        return self.response is not None

    # bytes in

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._on_data(event.data) for event in self._parser.feed(data) if not self.done)

    def finish(self) -> bytes:
        out = b"".join(self._on_data(event.data) for event in self._parser.flush() if not self.done)
        return out + self.end()

    def _on_data(self, data: str) -> bytes:
        if data.strip() == "[DONE]":
            return self.end()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return b""
        return self.chunk(chunk) if isinstance(chunk, dict) else b""

    # chunks in

    def start(self) -> bytes:
        """`response.created` and `response.in_progress`; sent before the first chunk if not called."""
        if self._started:
            return b""
        self._started = True
        response = envelope(self.request, self.response_id, self.created_at)
        return self._event("response.created", response=response) + \
            self._event("response.in_progress", response=response)

    def chunk(self, chunk: JSON) -> bytes:
        if self.done:
            return b""
        fast = self._more_text(chunk)
        if fast is not None:
            return fast
        if isinstance(chunk.get("error"), dict):
            return self._fail(chunk["error"])
        out = [self.start()]
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            # The gateway asked for one choice; any other index is not the client's answer.
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                out.append(self._choice(choice))
        return b"".join(out)

    def end(self) -> bytes:
        """The end of the chat stream: close what is open, then the terminal event."""
        if self.done:
            return b""
        if self._finish_reason is None:
            return self._fail({"message": TRUNCATED, "code": "server_error"})
        out = self.start() + self._close_all()
        status, reason = finish_status(self._finish_reason)
        self.response = envelope(self.request, self.response_id, self.created_at, status=status,
                                 output=list(self._output), usage=responses_usage(self._usage),
                                 incomplete_reason=reason)
        name = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._event(name, response=self.response)

    def _more_text(self, chunk: JSON) -> bytes | None:
        """Most chunks only add text to the open text part: their delta, written straight away;
        None for anything else (the general path)."""
        item = self._open
        if item is None or item.part != "output_text" or chunk.get("usage") or "error" in chunk:
            return None
        choices = chunk.get("choices")
        if type(choices) is not list or len(choices) != 1:
            return None
        choice = choices[0]
        if type(choice) is not dict or choice.get("index", 0) != 0 or choice.get("finish_reason"):
            return None
        delta = choice.get("delta")
        if type(delta) is not dict:
            return None
        text = delta.get("content")
        if type(text) is not str or not text or any(delta.get(k) for k in _NOT_TEXT):
            return None
        item.text += text
        return self._event("response.output_text.delta", item_id=item.id, output_index=item.index,
                           content_index=len(item.parts), delta=text, logprobs=[])

    # what a choice says

    def _choice(self, choice: JSON) -> bytes:
        out: list[bytes] = []
        delta: JSON = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
        for name in REASONING_FIELDS:
            if isinstance(delta.get(name), str) and delta[name]:
                out.append(self._reasoning(delta[name]))
                break
        if isinstance(delta.get("content"), str) and delta["content"]:
            out.append(self._text("output_text", delta["content"]))
        if isinstance(delta.get("refusal"), str) and delta["refusal"]:
            out.append(self._text("refusal", delta["refusal"]))
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict):
                out.append(self._tool_call(call))
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]
            out.append(self._close_all())
        return b"".join(out)

    def _reasoning(self, text: str) -> bytes:
        out = b""
        item = self._open
        if item is None or item.kind != "reasoning":
            out = self._close_all()
            item = self._new("reasoning", "rs")
            out += self._event("response.output_item.added", output_index=item.index,
                               item={"type": "reasoning", "id": item.id, "summary": [], "status": "in_progress"})
            out += self._event("response.reasoning_summary_part.added", item_id=item.id, output_index=item.index,
                               summary_index=0, part={"type": "summary_text", "text": ""})
            self._open = item
        item.text += text
        return out + self._event("response.reasoning_summary_text.delta", item_id=item.id, output_index=item.index,
                                 summary_index=0, delta=text)

    def _text(self, part: str, text: str) -> bytes:
        out = b""
        item = self._open
        if item is None or item.kind != "message":
            out = self._close_all()
            item = self._new("message", "msg")
            out += self._event("response.output_item.added", output_index=item.index,
                               item=message_item(item.id, [], "in_progress"))
            self._open = item
        if item.part != part:
            out += self._close_part(item)
            item.part = part
            empty = text_part("") if part == "output_text" else refusal_part("")
            out += self._event("response.content_part.added", item_id=item.id, output_index=item.index,
                               content_index=len(item.parts), part=empty)
        item.text += text
        if part == "output_text":
            return out + self._event("response.output_text.delta", item_id=item.id, output_index=item.index,
                                     content_index=len(item.parts), delta=text, logprobs=[])
        return out + self._event("response.refusal.delta", item_id=item.id, output_index=item.index,
                                 content_index=len(item.parts), delta=text)

    def _tool_call(self, call: JSON) -> bytes:
        out = b""
        k = call["index"] if isinstance(call.get("index"), int) else 0
        function: JSON = call["function"] if isinstance(call.get("function"), dict) else {}
        item = self._calls.get(k)
        if item is None:
            out = self._close_open()
            item = self._new("function_call", "fc")
            item.call_id = call["id"] if isinstance(call.get("id"), str) and call["id"] else f"call_{item.id}"
            item.name = str(function.get("name") or "")
            self._calls[k] = item
            out += self._event("response.output_item.added", output_index=item.index, item=function_call_item(
                self.request, item.id, item.call_id, item.name, "", "in_progress"))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.text += arguments
            out += self._event("response.function_call_arguments.delta", item_id=item.id, output_index=item.index,
                               delta=arguments)
        return out

    # closing

    def _new(self, kind: str, prefix: str) -> _Open:
        index = self._items
        self._items += 1
        return _Open(index, item_id(self.response_id, prefix, index), kind)

    def _close_all(self) -> bytes:
        out = self._close_open()
        for k in sorted(self._calls, key=lambda k: self._calls[k].index):
            item = self._calls[k]
            done = function_call_item(self.request, item.id, item.call_id, item.name, item.text, self._item_status())
            out += self._event("response.function_call_arguments.done", item_id=item.id, output_index=item.index,
                               arguments=item.text)
            out += self._done(item, done)
        self._calls.clear()
        return out

    def _close_open(self) -> bytes:
        item, self._open = self._open, None
        if item is None:
            return b""
        if item.kind == "reasoning":
            out = self._event("response.reasoning_summary_text.done", item_id=item.id, output_index=item.index,
                              summary_index=0, text=item.text)
            out += self._event("response.reasoning_summary_part.done", item_id=item.id, output_index=item.index,
                               summary_index=0, part={"type": "summary_text", "text": item.text})
            return out + self._done(item, reasoning_item(item.id, item.text))
        out = self._close_part(item)
        return out + self._done(item, message_item(item.id, item.parts, self._item_status()))

    def _close_part(self, item: _Open) -> bytes:
        if item.part is None:
            return b""
        index = len(item.parts)
        if item.part == "output_text":
            part = text_part(item.text)
            out = self._event("response.output_text.done", item_id=item.id, output_index=item.index,
                              content_index=index, text=item.text, logprobs=[])
        else:
            part = refusal_part(item.text)
            out = self._event("response.refusal.done", item_id=item.id, output_index=item.index,
                              content_index=index, refusal=item.text)
        item.parts.append(part)
        item.part, item.text = None, ""
        return out + self._event("response.content_part.done", item_id=item.id, output_index=item.index,
                                 content_index=index, part=part)

    def _done(self, item: _Open, done: JSON) -> bytes:
        self._output.append(done)
        return self._event("response.output_item.done", output_index=item.index, item=done)

    def _item_status(self) -> str:
        return "incomplete" if finish_status(self._finish_reason)[0] == "incomplete" else "completed"

    # failing

    def _fail(self, error: JSON) -> bytes:
        """An in-band error: the `error` event, then `response.failed` with what was finished."""
        message = error.get("message") if isinstance(error.get("message"), str) else "The stream failed."
        code = error["code"] if isinstance(error.get("code"), str) and error["code"] in ERROR_CODES else "server_error"
        out = self.start() + self._event("error", code=code, message=message, param=None)
        self.response = envelope(self.request, self.response_id, self.created_at, status="failed",
                                 output=list(self._output), usage=responses_usage(self._usage),
                                 error={"code": code, "message": message})
        return out + self._event("response.failed", response=self.response)

    def _event(self, name: str, **fields: Any) -> bytes:
        data = {"type": name, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
