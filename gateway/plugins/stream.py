"""Plugins on a stream: the provider's OpenAI SSE output, event by event, through the chunk hooks.

Only requests whose plugins look at chunks or at the whole answer come here; for the others
the relay forwards the translator's bytes untouched. Also here: assembling a stream into the
non-stream answer (what `after` hooks and the cache see) and the reverse, replaying an answer as
a stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway.core.types import Endpoint, StreamTranslator, Usage
from gateway.plugins.base import ChunkHook

DONE = b"data: [DONE]\n\n"
# (position in the chain, hook) -> True if the hook is to be dropped (its failure was skipped);
# raises when the failure is to end the stream.
OnFailure = Callable[[int, str, Exception], None]


class Assembler:
    """Collects a stream's chunks into the answer a non-stream call would have returned."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.chat = endpoint is Endpoint.CHAT
        self.head: dict[str, Any] | None = None
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        if self.head is None:
            self.head = {k: chunk[k] for k in ("id", "created", "model", "system_fingerprint") if k in chunk}
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            state = self.choices.get(index)
            if state is None:
                state = self.choices[index] = {"text": [], "finish": None, "tools": {}}
            if choice.get("finish_reason") is not None:
                state["finish"] = choice["finish_reason"]
            if not self.chat:
                if isinstance(choice.get("text"), str):
                    state["text"].append(choice["text"])
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                state["text"].append(delta["content"])
            for call in delta.get("tool_calls") or ():
                slot = state["tools"].setdefault(
                    call.get("index", 0), {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                )
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    slot["function"]["name"] = function["name"]
                if isinstance(function.get("arguments"), str):
                    slot["function"]["arguments"] += function["arguments"]

    def body(self, usage: Usage | None) -> dict[str, Any]:
        head = self.head or {}
        choices = []
        for index in sorted(self.choices):
            state = self.choices[index]
            text = "".join(state["text"])
            if self.chat:
                message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
                if state["tools"]:
                    message["tool_calls"] = [state["tools"][i] for i in sorted(state["tools"])]
                elif not text:
                    message["content"] = ""
                choices.append({"index": index, "message": message, "finish_reason": state["finish"],
                                "logprobs": None})
            else:
                choices.append({"index": index, "text": text, "finish_reason": state["finish"], "logprobs": None})
        body: dict[str, Any] = {
            "id": head.get("id", ""),
            "object": "chat.completion" if self.chat else "text_completion",
            "created": head.get("created", 0),
            "model": head.get("model", ""),
            "choices": choices,
        }
        if "system_fingerprint" in head:
            body["system_fingerprint"] = head["system_fingerprint"]
        if self.usage is not None:
            body["usage"] = self.usage
        elif usage is not None:
            body["usage"] = usage_body(usage)
        return body


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


class FilteredStream:
    """A `StreamTranslator` around the provider's: text goes through each chunk hook in order."""

    def __init__(
        self,
        inner: StreamTranslator,
        endpoint: Endpoint,
        hooks: list[tuple[int, ChunkHook]],
        assembler: Assembler | None,
        on_failure: OnFailure,
    ) -> None:
        self.inner = inner
        self.chat = endpoint is Endpoint.CHAT
        self.hooks = hooks
        self.assembler = assembler
        self.on_failure = on_failure
        self._pending = b""
        self._open: set[int] = set()

    @property
    def usage(self) -> Usage | None:
        return self.inner.usage

    @property
    def done(self) -> bool:
        return self.inner.done

    def feed(self, data: bytes) -> bytes:
        return self._events(self.inner.feed(data), final=False)

    def finish(self) -> bytes:
        return self._events(self.inner.finish(), final=True)

    def _events(self, out: bytes, final: bool) -> bytes:
        if self._pending:
            out, self._pending = self._pending + out, b""
        end = out.rfind(b"\n\n")
        if end < 0:
            if not final:
                self._pending = out
                return b""
            return out + self._flush_all(None)
        out, self._pending = out[: end + 2], out[end + 2 :]
        result: list[bytes] = []
        last: dict[str, Any] | None = None
        for event in out.split(b"\n\n")[:-1]:
            if not event.startswith(b"data:"):
                result.append(event + b"\n\n")
                continue
            payload = event[5:].strip()
            if payload == b"[DONE]":
                result.append(self._flush_all(last))
                result.append(DONE)
                continue
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                result.append(event + b"\n\n")
                continue
            if not isinstance(chunk, dict) or "error" in chunk:
                result.append(event + b"\n\n")
                continue
            last = chunk
            result.append(self._chunk(chunk, event))
        if final:
            result.append(self._flush_all(last))
        return b"".join(result)

    def _chunk(self, chunk: dict[str, Any], event: bytes) -> bytes:
        changed = False
        before = b""
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            if self.chat:
                delta = choice.get("delta")
                text = delta.get("content") if isinstance(delta, dict) else None
            else:
                delta, text = None, choice.get("text")
            new = text
            if isinstance(text, str) and text and self.hooks:
                self._open.add(index)
                new = self._feed(index, text)
            if choice.get("finish_reason") is not None and index in self._open:
                if isinstance(text, str) and text:
                    # Text and the finish in one event: what was held goes at the end of this text.
                    self._open.discard(index)
                    new = (new or "") + self._release(index)
                else:
                    before += self._tail(chunk, index)
            if new != text:
                changed = True
                if delta is not None:
                    delta["content"] = new
                else:
                    choice["text"] = new
        if self.assembler is not None:
            self.assembler.add(chunk)
        return before + (b"data: " + orjson.dumps(chunk) + b"\n\n" if changed else event + b"\n\n")

    def _feed(self, index: int, text: str) -> str:
        for position, hook in list(self.hooks):
            try:
                text = hook.feed(index, text)
            except Exception as exc:
                self._failed(position, hook, exc)
        return text

    def _release(self, index: int) -> str:
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

    def _tail(self, chunk: dict[str, Any], index: int) -> bytes:
        """What the hooks still hold for a choice that is ending, as a chunk of its own."""
        self._open.discard(index)
        text = self._release(index)
        if not text:
            return b""
        if self.chat:
            choice: dict[str, Any] = {"index": index, "delta": {"content": text}, "logprobs": None,
                                      "finish_reason": None}
        else:
            choice = {"index": index, "text": text, "logprobs": None, "finish_reason": None}
        extra = {**{k: v for k, v in chunk.items() if k not in ("choices", "usage")}, "choices": [choice]}
        if self.assembler is not None:
            self.assembler.add(extra)
        return b"data: " + orjson.dumps(extra) + b"\n\n"

    def _flush_all(self, last: dict[str, Any] | None) -> bytes:
        template = last or {"object": "chat.completion.chunk" if self.chat else "text_completion"}
        return b"".join(self._tail(template, index) for index in sorted(self._open))


def replay(body: dict[str, Any], endpoint: Endpoint, include_usage: bool) -> bytes:
    """A whole answer as the stream that would have carried it: role, text, tool calls, finish, usage."""
    chat = endpoint is Endpoint.CHAT
    base: dict[str, Any] = {k: body[k] for k in ("id", "created", "model", "system_fingerprint") if k in body}
    base["object"] = "chat.completion.chunk" if chat else "text_completion"
    extra = {"usage": None} if include_usage else {}
    events: list[bytes] = []

    def emit(choice: dict[str, Any]) -> None:
        events.append(b"data: " + orjson.dumps({**base, "choices": [choice], **extra}) + b"\n\n")

    for choice in body.get("choices") or ():
        index = choice.get("index", 0)
        if chat:
            message = choice.get("message") or {}
            emit({"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                  "finish_reason": None})
            if message.get("content"):
                emit({"index": index, "delta": {"content": message["content"]}, "logprobs": None,
                      "finish_reason": None})
            for i, call in enumerate(message.get("tool_calls") or ()):
                emit({"index": index, "delta": {"tool_calls": [{"index": i, **call}]}, "logprobs": None,
                      "finish_reason": None})
            emit({"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason")})
        else:
            emit({"index": index, "text": choice.get("text") or "", "logprobs": None, "finish_reason": None})
            emit({"index": index, "text": "", "logprobs": None, "finish_reason": choice.get("finish_reason")})
    if include_usage and isinstance(body.get("usage"), dict):
        events.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": body["usage"]}) + b"\n\n")
    events.append(DONE)
    return b"".join(events)
