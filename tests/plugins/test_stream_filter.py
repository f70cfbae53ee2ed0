"""The chunk hooks on real OpenAI SSE bytes (the fake upstream's own stream builder), behind the
OpenAI stream translator: text changed or held per choice, held text released before the choice's
finish chunk, the stream assembled into the non-stream answer, and answers replayed as streams."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from gateway.core.types import Endpoint
from gateway.fake.behaviour import Behaviour
from gateway.fake.replies import chat, completion
from gateway.plugins.stream import Assembler, FilteredStream, replay
from gateway.providers.openai.stream import OpenAIStreamTranslator


def upstream_bytes(endpoint: Endpoint, content: str, n: int = 1, usage: bool = True) -> bytes:
    req: dict[str, Any] = {"model": "m", "stream": True, "n": n, "stream_options": {"include_usage": usage}}
    if endpoint is Endpoint.CHAT:
        req["messages"] = [{"role": "user", "content": "x"}]
        stream = chat(req, Behaviour(content=content), 1, 1_700_000_000)
    else:
        req["prompt"] = "x"
        stream = completion(req, Behaviour(content=content), 1, 1_700_000_000)
    assert not isinstance(stream, dict)
    return stream.head + b"".join(stream.events) + stream.tail


class HoldWords:
    """Releases text only up to its last space; upper-cases it."""

    def __init__(self) -> None:
        self.held: dict[int, str] = {}

    def feed(self, index: int, text: str) -> str:
        text = self.held.pop(index, "") + text
        cut = text.rfind(" ") + 1
        self.held[index] = text[cut:]
        return text[:cut].upper()

    def flush(self, index: int) -> str:
        return self.held.pop(index, "").upper()


def events(data: bytes) -> list[dict[str, Any]]:
    out = []
    for event in data.split(b"\n\n"):
        payload = event.partition(b"data: ")[2]
        if payload and payload != b"[DONE]":
            out.append(orjson.loads(payload))
    return out


def text_of(chunks: list[dict[str, Any]], index: int, chat_api: bool) -> str:
    parts = []
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            if choice["index"] == index:
                parts.append((choice.get("delta") or {}).get("content") or "" if chat_api else choice.get("text") or "")
    return "".join(parts)


def run(data: bytes, endpoint: Endpoint, split: int) -> tuple[bytes, Assembler]:
    assembler = Assembler(endpoint)
    filtered = FilteredStream(OpenAIStreamTranslator(strip_usage=False), endpoint, [(0, HoldWords())], assembler,
                              lambda position, hook, exc: None)
    out = b"".join(filtered.feed(data[i : i + split]) for i in range(0, len(data), split)) + filtered.finish()
    return out, assembler


@pytest.mark.parametrize(("endpoint", "split"),
                         itertools.product([Endpoint.CHAT, Endpoint.COMPLETIONS], [1, 7, 10_000]))
def test_text_is_filtered_and_held_text_comes_before_the_finish(endpoint: Endpoint, split: int) -> None:
    data = upstream_bytes(endpoint, "alpha beta gamma", n=2)
    out, assembler = run(data, endpoint, split)
    chunks = events(out)
    chat_api = endpoint is Endpoint.CHAT
    for index in (0, 1):
        assert text_of(chunks, index, chat_api) == "ALPHA BETA GAMMA"
        positions = [i for i, c in enumerate(chunks) for ch in c["choices"] if ch["index"] == index]
        finish = [i for i in positions if chunks[i]["choices"][0]["finish_reason"]]
        held = [i for i in positions if text_of([chunks[i]], index, chat_api) == "GAMMA"]
        assert held and finish and held[0] < finish[0]
    assert out.endswith(b"data: [DONE]\n\n") and out.count(b"[DONE]") == 1
    body = assembler.body(None)
    key = "message" if chat_api else None
    texts = [c[key]["content"] if key else c["text"] for c in body["choices"]]
    assert texts == ["ALPHA BETA GAMMA"] * 2
    assert [c["finish_reason"] for c in body["choices"]] == ["stop", "stop"]
    assert body["usage"]["completion_tokens"] == 6


def test_replay_is_the_stream_of_the_same_answer() -> None:
    data = upstream_bytes(Endpoint.CHAT, "one two three")
    _, assembler = run(data, Endpoint.CHAT, 5)
    body = assembler.body(None)
    replayed = replay(body, Endpoint.CHAT, include_usage=True)
    again = Assembler(Endpoint.CHAT)
    for chunk in events(replayed):
        again.add(chunk)
    assert again.body(None) == body
    assert events(replay(body, Endpoint.CHAT, include_usage=False))[-1]["choices"][0]["finish_reason"] == "stop"


def test_tool_calls_are_assembled() -> None:
    req = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    stream = chat(req, Behaviour(tool_call={"name": "lookup", "arguments": '{"city": "Paris"}'}), 1, 1)
    assert not isinstance(stream, dict)
    assembler = Assembler(Endpoint.CHAT)
    for chunk in events(stream.head + b"".join(stream.events) + stream.tail):
        assembler.add(chunk)
    [choice] = assembler.body(None)["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"city": "Paris"}'}


def test_a_failing_hook_is_dropped_or_ends_the_stream() -> None:
    class Boom:
        def feed(self, index: int, text: str) -> str:
            raise ValueError("boom")

        def flush(self, index: int) -> str:
            return ""

    data = upstream_bytes(Endpoint.CHAT, "a b c")
    failures: list[str] = []
    skipping = FilteredStream(OpenAIStreamTranslator(strip_usage=False), Endpoint.CHAT, [(0, Boom())], None,
                              lambda position, hook, exc: failures.append(hook))
    assert text_of(events(skipping.feed(data) + skipping.finish()), 0, True) == "a b c"
    assert failures == ["on_chunk"]  # once: then the hook is gone

    def fail(position: int, hook: str, exc: Exception) -> None:
        raise RuntimeError("end it")

    ending = FilteredStream(OpenAIStreamTranslator(strip_usage=False), Endpoint.CHAT, [(0, Boom())], None, fail)
    with pytest.raises(RuntimeError):
        ending.feed(data)


def test_text_and_finish_in_one_event_keep_their_order() -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": "one two thr"}, "finish_reason": None}]}
    last = {**chunk, "choices": [{"index": 0, "delta": {"content": "ee four"}, "finish_reason": "stop"}]}
    data = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in (chunk, last)) + b"data: [DONE]\n\n"
    filtered = FilteredStream(OpenAIStreamTranslator(strip_usage=False), Endpoint.CHAT, [(0, HoldWords())], None,
                              lambda position, hook, exc: None)
    out = filtered.feed(data) + filtered.finish()
    assert text_of(events(out), 0, True) == "ONE TWO THREE FOUR"
    assert events(out)[-1]["choices"][0]["finish_reason"] == "stop"
