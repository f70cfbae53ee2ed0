"""The `/v1/messages` translations, and round trips through the Anthropic adapter, without a network."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.core.errors import InvalidRequest, RateLimited, ServiceUnavailable, UpstreamUnreachable
from gateway.core.types import Usage
from gateway.dialects.anthropic.endpoint import MessagesWriter
from gateway.dialects.anthropic.request import to_openai
from gateway.dialects.anthropic.response import error_from_gateway, to_message
from gateway.dialects.anthropic.stream import MessagesStreamTranslator
from gateway.providers.anthropic.request import to_anthropic
from gateway.providers.anthropic.response import from_anthropic
from gateway.providers.anthropic.stream import AnthropicStreamTranslator
from tests.providers.helpers import data_frames, openai_events, reassemble

BASE = {"model": "m", "max_tokens": 100}


def _named(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in body.split(b"\n\n"):
        if block:
            name, data = block.split(b"\n")
            out.append((name.removeprefix(b"event: ").decode(), orjson.loads(data.removeprefix(b"data: "))))
    return out


def test_request_maps_every_field() -> None:
    body = {
        **BASE,
        "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "Use metric."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "5C"}]},
                {"type": "text", "text": "And tomorrow?"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
                                          "content": "no data"}]},
        ],
        "tools": [{"name": "weather", "description": "Weather", "input_schema": {"type": "object"}},
                  {"type": "custom", "name": "noop", "input_schema": {"type": "object", "properties": {}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"], "temperature": 0.3, "top_p": 0.9, "top_k": 4,
        "metadata": {"user_id": "u-7"}, "stream": True, "thinking": {"type": "enabled", "budget_tokens": 2000},
        "fake": {"tokens": 2},
    }
    assert to_openai(orjson.dumps(body)) == {
        "model": "m", "max_tokens": 100, "fake": {"tokens": 2},
        "messages": [
            {"role": "system", "content": "Be terse.\n\nUse metric."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "5C"},
            {"role": "user", "content": "And tomorrow?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no data"},
        ],
        "stream": True, "stream_options": {"include_usage": True},
        "temperature": 0.3, "top_p": 0.9, "stop": ["END"], "user": "u-7",
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"},
                                                    "description": "Weather"}},
                  {"type": "function",
                   "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "required", "parallel_tool_calls": False,
    }


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({**BASE, "messages": []}, "messages"),
    ({**BASE, "messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
    ({**BASE, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
     "messages.0.content.0.type"),
    ({**BASE, "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ({**BASE, "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search_20250305",
                                                                         "name": "web_search"}]}, "tools.0"),
    ({**BASE, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "sometimes"}}, "tool_choice"),
    ({**BASE, "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
])
def test_bad_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_openai(orjson.dumps(body))
    assert caught.value.param == param


@pytest.mark.parametrize("raw", [b"", b"{", b"[1]"])
def test_bodies_that_are_not_objects(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        to_openai(raw)


def test_response() -> None:
    completion = {
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-x",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Sure.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": [1]}'}},
                {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{broken"}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 40}},
    }
    assert to_message(completion) == {
        "id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-x",
        "content": [{"type": "text", "text": "Sure."},
                    {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": [1]}},
                    {"type": "tool_use", "id": "call_2", "name": "g", "input": {"_unparsed_arguments": "{broken"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 60, "output_tokens": 7, "cache_read_input_tokens": 40,
                  "cache_creation_input_tokens": 0},
    }


def test_errors_in_anthropics_shape() -> None:
    assert orjson.loads(error_from_gateway(RateLimited("slow down"), "req_1")) == {
        "type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}, "request_id": "req_1"}
    overloaded = ServiceUnavailable("The engine is overloaded")
    assert orjson.loads(error_from_gateway(overloaded))["error"] == {"type": "overloaded_error",
                                                                     "message": "The engine is overloaded"}
    assert orjson.loads(error_from_gateway(UpstreamUnreachable("gone")))["error"]["type"] == "api_error"


def _openai_stream() -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    def call(k: int, **fields: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": k, **fields}]}

    frames = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me "}), chunk({"content": "look."}),
        chunk(call(0, id="call_a", type="function", function={"name": "f", "arguments": ""})),
        chunk(call(0, function={"arguments": '{"x": '})), chunk(call(0, function={"arguments": "1}"})),
        chunk(call(1, id="call_b", type="function", function={"name": "g", "arguments": "{}"})),
        chunk({}, "tool_calls"),
        {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x", "choices": [],
         "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
                   "prompt_tokens_details": {"cached_tokens": 10}}},
    ]
    return data_frames(frames) + b"data: [DONE]\n\n"


def test_stream_events_in_anthropics_order() -> None:
    translator = MessagesStreamTranslator("m")
    events = _named(translator.feed(_openai_stream()) + translator.finish())
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert [d["index"] for n, d in events if n.startswith("content_block")] == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert events[5][1]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "f", "input": {}}
    assert events[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                             "usage": {"input_tokens": 20, "output_tokens": 12, "cache_read_input_tokens": 10,
                                       "cache_creation_input_tokens": 0}}
    assert translator.done and translator.finish() == b""


def test_stream_in_band_error_and_a_stream_cut_before_done() -> None:
    translator = MessagesStreamTranslator("m")
    error = {"error": {"message": "boom", "type": "server_error", "code": "overloaded"}}
    events = _named(translator.feed(data_frames([{"id": "c", "choices": [{"index": 0, "delta": {"content": "a"}}]},
                                                  error])) + translator.finish())
    assert events[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "boom"}})
    cut = MessagesStreamTranslator("m")
    events = _named(cut.feed(_openai_stream()[:200]) + cut.finish())
    assert [name for name, _ in events][-2:] == ["message_delta", "message_stop"]



# The dialect's stream writer, as the relay calls it: the neutral stream in, Anthropic's events out.

async def test_writer_names_the_request_and_writes_the_neutral_stream() -> None:
    writer = MessagesWriter("m", "req_1")
    assert writer.headers == {"request-id": "req_1"}
    stream = _openai_stream()
    pieces = [await writer.feed(stream[i:i + 41]) for i in range(0, len(stream), 41)]  # events cut in two
    events = _named(b"".join(pieces) + await writer.finish())
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert events[0][1]["message"]["model"] == "gpt-x"
    assert await writer.finish() == b"" and await writer.error(RateLimited("late")) == b""


async def test_writer_in_band_error_ends_the_stream() -> None:
    writer = MessagesWriter("m", "req_1")
    first = await writer.feed(data_frames([{"id": "c", "choices": [{"index": 0, "delta": {"content": "a"}}]}]))
    events = _named(first + await writer.error(RateLimited("slow down")))
    assert [name for name, _ in events] == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert events[-1][1] == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    # Nothing follows: not the rest of the stream, nor its closing events.
    assert await writer.feed(_openai_stream()) == b"" and await writer.finish() == b""


async def test_writer_closes_a_stream_cut_before_done() -> None:
    writer = MessagesWriter("m", "req_1")
    events = _named(await writer.feed(_openai_stream()[:200]) + await writer.finish())
    assert events[0][0] == "message_start"
    assert [name for name, _ in events][-2:] == ["message_delta", "message_stop"]
    # An error the server sends before anything was written is the whole stream: Anthropic's error event.
    cut = MessagesWriter("m", "req_2")
    assert _named(await cut.error(ServiceUnavailable("shutting down"))) == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "shutting down"}})]


# Round trips: OpenAI -> Anthropic (the adapter) -> OpenAI (the inbound endpoint), meaning kept.

def test_request_round_trip() -> None:
    original = {
        "model": "m", "max_tokens": 64, "temperature": 0.5, "stop": ["x"], "user": "u",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "5C"},
            {"role": "user", "content": [{"type": "text", "text": "Thanks"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "W",
                                                    "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "auto",
    }
    anthropic_body = {**to_anthropic(original, "m"), "model": "m"}
    assert to_openai(orjson.dumps(anthropic_body)) == original


def test_response_round_trip() -> None:
    completion = {
        "id": "msg_1", "object": "chat.completion", "created": 5, "model": "m",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "On it.", "refusal": None, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
                  "prompt_tokens_details": {"cached_tokens": 40}},
    }
    back, usage = from_anthropic(to_message(completion), 5)
    assert back == completion
    assert usage == Usage(prompt_tokens=100, completion_tokens=7, cached_tokens=40)


def test_stream_round_trip() -> None:
    original = _openai_stream()
    there = MessagesStreamTranslator("m")
    anthropic_sse = there.feed(original) + there.finish()
    back = AnthropicStreamTranslator(True, 1, "m")
    events = openai_events(back.feed(anthropic_sse) + back.finish())
    assert reassemble(events) == reassemble(openai_events(original))
    assert back.usage == Usage(prompt_tokens=30, completion_tokens=12, cached_tokens=10)
