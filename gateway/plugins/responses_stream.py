"""Plugins on a Responses API event stream (a native relay): the text deltas through the chunk hooks.

A native `/v1/responses` stream is the upstream's own events, not chat chunks, so `FilteredStream`
cannot read it. This filter gives its `response.output_text.delta` events the same treatment chat
deltas get: each content part's text goes through every chunk hook in order, and what a hook held
back comes out, as one more delta, just before that part's `response.output_text.done`. The events
that repeat the whole text (`output_text.done`, `content_part.done`, `output_item.done` and the
terminal `response.*`) carry the filtered text, and every `sequence_number` after an added delta
moves up by one, so the stream stays what the API documents. The final `response` is what `after`
hooks see, as a unary native answer's is; the Responses dialect's writer stores it as this filter
wrote it (what the client got).
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from gateway.core.types import Usage
from gateway.plugins.base import ChunkHook
from gateway.plugins.stream import OnFailure
from gateway.plugins.text import output_text_parts

# (output_index, content_index) of an `output_text` part -> its text as the client got it.
Texts = dict[tuple[int, int], str]
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesEvents(Protocol):
    """A stream translator that relays Responses API events (gateway/dialects/responses/adapters.py)."""

    usage: Usage | None
    done: bool

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class ResponsesFilteredStream:
    def __init__(self, inner: ResponsesEvents, hooks: list[tuple[int, ChunkHook]], keep_answer: bool,
                 on_failure: OnFailure) -> None:
        self.inner = inner
        self.hooks = hooks
        self.on_failure = on_failure
        self.texts: Texts = {}
        self._index: dict[tuple[int, int], int] = {}
        self._shift = 0  # deltas added so far: how far later sequence numbers move
        self._pending = b""
        # What `after` hooks are given once the stream has ended: the final `response` object.
        self.assembler = self if keep_answer else None
        self._final: dict[str, Any] | None = None

    @property
    def usage(self) -> Usage | None:
        return self.inner.usage

    @property
    def done(self) -> bool:
        return self.inner.done

    def body(self, usage: Usage | None) -> dict[str, Any]:
        return self._final if self._final is not None else {}

    def feed(self, data: bytes) -> bytes:
        return self._events(self.inner.feed(data))

    def finish(self) -> bytes:
        out = self._events(self.inner.finish())
        tail, self._pending = self._pending, b""
        return out + tail

    def _events(self, out: bytes) -> bytes:
        if self._pending:
            out, self._pending = self._pending + out, b""
        end = out.rfind(b"\n\n")
        if end < 0:
            self._pending = out
            return b""
        out, self._pending = out[: end + 2], out[end + 2 :]
        return b"".join(self._event(event) for event in out.split(b"\n\n")[:-1])

    def _event(self, event: bytes) -> bytes:
        head, marker, payload = event.partition(b"data:")
        try:
            data = orjson.loads(payload) if marker else None
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            return event + b"\n\n"
        kind = data.get("type")
        before = b""
        changed = False
        if kind == "response.output_text.delta" and isinstance(data.get("delta"), str):
            key = _key(data)
            new = self._feed(key, data["delta"]) if data["delta"] and self.hooks else data["delta"]
            self.texts[key] = self.texts.get(key, "") + new
            changed = new != data["delta"]
            data["delta"] = new
        elif kind == "response.output_text.done":
            key = _key(data)
            held = self._release(key)
            if held:
                self.texts[key] = self.texts.get(key, "") + held
                extra = {"type": "response.output_text.delta", "sequence_number": data.get("sequence_number"),
                         **{k: data[k] for k in ("item_id", "output_index", "content_index") if k in data},
                         "delta": held, "logprobs": []}
                before = self._write(b"event: response.output_text.delta\n", extra)
                self._shift += 1
            if key in self.texts and data.get("text") != self.texts[key]:
                data["text"] = self.texts[key]
                changed = True
        elif kind == "response.content_part.done":
            part = data.get("part")
            key = _key(data)
            if isinstance(part, dict) and key in self.texts and part.get("text") != self.texts[key]:
                part["text"] = self.texts[key]
                changed = True
        elif kind == "response.output_item.done":
            item = data.get("item")
            if isinstance(item, dict) and isinstance(data.get("output_index"), int):
                changed = self._set_texts(data["output_index"], item)
        elif kind in _TERMINAL and isinstance(data.get("response"), dict):
            output = data["response"].get("output")
            for i, item in enumerate(output if isinstance(output, list) else ()):
                changed = self._set_texts(i, item) or changed
            self._final = data["response"]
        if self._shift and isinstance(data.get("sequence_number"), int):
            data["sequence_number"] += self._shift
            changed = True
        if not changed:
            return before + event + b"\n\n"
        return before + self._write(head, data)

    def _set_texts(self, output_index: int, item: Any) -> bool:
        changed = False
        for content_index, part in output_text_parts(item):
            text = self.texts.get((output_index, content_index))
            if text is not None and part["text"] != text:
                part["text"] = text
                changed = True
        return changed

    @staticmethod
    def _write(head: bytes, data: dict[str, Any]) -> bytes:
        return head + b"data: " + orjson.dumps(data) + b"\n\n"

    def _slot(self, key: tuple[int, int]) -> int:
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self._index)
        return index

    def _feed(self, key: tuple[int, int], text: str) -> str:
        index = self._slot(key)
        for position, hook in list(self.hooks):
            try:
                text = hook.feed(index, text)
            except Exception as exc:
                self._failed(position, hook, exc)
        return text

    def _release(self, key: tuple[int, int]) -> str:
        if key not in self._index:
            return ""
        index = self._index[key]
        text = ""
        for position, hook in list(self.hooks):
            try:
                text = (hook.feed(index, text) if text else "") + hook.flush(index)
            except Exception as exc:
                self._failed(position, hook, exc)
        return text

    def _failed(self, position: int, hook: ChunkHook, exc: Exception) -> None:
        self.on_failure(position, "on_chunk", exc)  # raises when the stream is to end with an error
        self.hooks = [(p, h) for p, h in self.hooks if h is not hook]


def _key(data: dict[str, Any]) -> tuple[int, int]:
    output, content = data.get("output_index"), data.get("content_index")
    return (output if isinstance(output, int) else 0, content if isinstance(content, int) else 0)
