"""Chat clients in front of a Responses-only deployment: request, response and stream, and round trips."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from gateway.core.errors import InvalidRequest, UpstreamError
from gateway.dialects.responses.backend.request import to_responses
from gateway.dialects.responses.backend.response import from_responses
from gateway.dialects.responses.backend.stream import ResponsesEventTranslator
from gateway.dialects.responses.request import parse, read
from gateway.dialects.responses.response import to_response
from tests.dialects.responses.helpers import request
from tests.dialects.responses.test_stream import MIXED, TEXT, write
from tests.providers.helpers import openai_events, reassemble, split_feed

CHAT: dict[str, Any] = {
    "model": "alias",
    "messages": [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": [{"type": "text", "text": "Look at"},
                                     {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}}]},
        {"role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "look", "arguments": '{"q": 1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
        {"role": "user", "content": "And?"},
    ],
    "tools": [{"type": "function", "function": {"name": "look", "description": "Look.",
                                                "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "look"}},
    "parallel_tool_calls": False, "max_completion_tokens": 50, "temperature": 0.5, "top_p": 0.8, "user": "u",
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    "reasoning_effort": "low", "verbosity": "high", "stream": True, "stream_options": {"include_usage": True},
    "seed": 3, "vendor_option": {"keep": True},
}


def test_every_chat_field_maps() -> None:
    assert to_responses(CHAT, "o-pro") == {
        "model": "o-pro", "vendor_option": {"keep": True}, "store": False, "stream": True,
        "input": [
            {"type": "message", "role": "system", "content": "Be terse."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Look at"},
                {"type": "input_image", "image_url": "https://x/a.png", "detail": "high"}]},
            {"type": "message", "role": "assistant", "content": "Looking."},
            {"type": "function_call", "call_id": "c1", "name": "look", "arguments": '{"q": 1}'},
            {"type": "function_call_output", "call_id": "c1", "output": "a cat"},
            {"type": "message", "role": "user", "content": "And?"},
        ],
        "temperature": 0.5, "top_p": 0.8, "user": "u", "parallel_tool_calls": False, "max_output_tokens": 50,
        "tools": [{"type": "function", "name": "look", "parameters": {"type": "object"}, "strict": False,
                   "description": "Look."}],
        "tool_choice": {"type": "function", "name": "look"},
        "text": {"verbosity": "high", "format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
        "reasoning": {"effort": "low"},
    }


def test_a_round_trip_through_the_reader_gives_the_chat_request_back() -> None:
    there = to_responses(CHAT, "alias")
    back = read(parse(orjson.dumps(there))).chat
    for name in ("messages", "tools", "tool_choice", "parallel_tool_calls", "max_completion_tokens", "temperature",
                 "top_p", "user", "reasoning_effort", "verbosity", "stream", "stream_options", "vendor_option"):
        expected = CHAT[name]
        if name == "tools":
            expected = [{"type": "function", "function": {**CHAT["tools"][0]["function"], "strict": False}}]
        assert back[name] == expected, name
    assert back["response_format"] == {"type": "json_schema", "json_schema": {"name": "x",
                                                                              "schema": {"type": "object"}}}


@pytest.mark.parametrize(("chat", "param"), [
    ({"messages": [{"role": "user", "content": "x"}], "stop": ["END"]}, "stop"),
    ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ({"messages": [{"role": "user", "content": "x"}], "logprobs": True}, "logprobs"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "critic", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"function": {}}]}]}, "messages[0].tool_calls[0]"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "code"}]}, "tools[0]"),
    ({"messages": [{"role": "user", "content": "x"}], "tool_choice": 5}, "tool_choice"),
    ({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}}, "response_format"),
])
def test_what_the_responses_api_cannot_do_is_a_400(chat: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        to_responses({"model": "m", **chat}, "m")
    assert raised.value.param == param


def _response(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
                  "usage": {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11,
                            "prompt_tokens_details": {"cached_tokens": 1},
                            "completion_tokens_details": {"reasoning_tokens": 2}}}
    tools = [{"type": "function", "name": "look"}]
    return to_response(completion, request(tools=tools), "resp_" + "ef" * 24, 1234)


def test_a_response_back_to_a_chat_completion() -> None:
    completion = from_responses(_response({"content": "Hi.", "refusal": "No."}), 99)
    sdk = ChatCompletion.model_validate(completion)
    assert sdk.choices[0].message.content == "Hi." and sdk.choices[0].message.refusal == "No."
    assert sdk.choices[0].finish_reason == "stop" and sdk.created == 1234 and sdk.model == "m"
    assert completion["usage"] == {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11,
                                   "prompt_tokens_details": {"cached_tokens": 1},
                                   "completion_tokens_details": {"reasoning_tokens": 2}}
    calls = from_responses(_response({"content": None, "tool_calls": [
        {"id": "c9", "type": "function", "function": {"name": "look", "arguments": "{}"}}]}, "tool_calls"), 99)
    choice = ChatCompletion.model_validate(calls).choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls is not None and choice.message.tool_calls[0].id == "c9"
    cut = from_responses(_response({"content": "Par"}, "length"), 99)
    assert cut["choices"][0]["finish_reason"] == "length"


def test_a_failed_response_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError) as raised:
        from_responses({"status": "failed", "error": {"code": "rate_limit_exceeded", "message": "slow down"}}, 1)
    assert (raised.value.status, raised.value.message) == (429, "slow down")
    with pytest.raises(UpstreamError) as raised:
        from_responses({"status": "failed"}, 1)
    assert raised.value.status == 502


def translate(events: bytes, cuts: list[int] | None = None) -> list[Any]:
    translator = ResponsesEventTranslator(client_wants_usage=True, created=1, model="m")
    return openai_events(split_feed(translator, events, cuts or []))


def test_events_to_chunks_round_trip() -> None:
    _, text = write(TEXT)
    rebuilt = reassemble(translate(text))
    assert (rebuilt["text"], rebuilt["finish"]) == ("Hello world", "stop")
    assert rebuilt["usage"]["prompt_tokens"] == 5 and rebuilt["usage"]["completion_tokens"] == 9
    _, mixed = write(MIXED, tools=[{"type": "function", "name": "look"}, {"type": "function", "name": "ns__inner"}])
    chunks = translate(mixed)
    rebuilt = reassemble(chunks)
    assert rebuilt["text"] == "Calling." and rebuilt["finish"] == "tool_calls"
    assert rebuilt["calls"] == [{"id": "call_a", "name": "look", "arguments": '{"q": "x"}'},
                                {"id": "call_b", "name": "ns__inner", "arguments": "{}"}]
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks
                        if isinstance(c, dict) and c["choices"])
    assert reasoning == "Let me think." and chunks[-1] == "[DONE]"


def test_failures_end_the_chat_stream_with_an_error() -> None:
    _, failed = write([{"choices": [{"index": 0, "delta": {"content": "x"}}]},
                       {"error": {"message": "boom", "code": "rate_limit_exceeded"}}])
    translator = ResponsesEventTranslator(client_wants_usage=False, created=1)
    assert translator.feed(failed)
    with pytest.raises(UpstreamError) as raised:
        translator.finish()
    assert raised.value.status == 429 and raised.value.message == "boom"
    truncated = ResponsesEventTranslator(client_wants_usage=False, created=1)
    truncated.feed(write(TEXT)[1].split(b"event: response.completed")[0])
    with pytest.raises(UpstreamError) as raised:
        truncated.finish()
    assert raised.value.code == "upstream_stream_truncated"


MIXED_EVENTS = write(MIXED, tools=[{"type": "function", "name": "look"}, {"type": "function", "name": "ns__inner"}])[1]


@given(st.lists(st.integers(min_value=0, max_value=len(MIXED_EVENTS)), max_size=30))
def test_any_split_of_the_event_bytes_gives_the_same_chunks(cuts: list[int]) -> None:
    assert translate(MIXED_EVENTS, cuts) == translate(MIXED_EVENTS)
