"""The Anthropic adapter's pure translations, from JSON fixtures, without a network."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.errors import ContextLengthExceeded, GatewayError, InvalidRequest, RateLimited, UpstreamError
from gateway.core.types import Usage
from gateway.providers.anthropic.errors import map_error
from gateway.providers.anthropic.request import DEFAULT_MAX_TOKENS, JSON_TOOL, to_anthropic
from gateway.providers.anthropic.response import from_anthropic
from gateway.providers.anthropic.stream import AnthropicStreamTranslator
from tests.providers.helpers import deltas, fixture, openai_events, reassemble, split_feed, sse

USER = [{"role": "user", "content": "hi"}]


def test_request_maps_every_field() -> None:
    case = fixture("anthropic_request.json")
    assert to_anthropic(case["openai"], "claude-sonnet-4-5") == case["anthropic"]


def test_max_tokens_comes_from_the_request_then_the_deployment_then_the_default() -> None:
    assert to_anthropic({"messages": USER, "max_tokens": 12}, "m", 99)["max_tokens"] == 12
    assert to_anthropic({"messages": USER}, "m", 99)["max_tokens"] == 99
    assert to_anthropic({"messages": USER}, "m")["max_tokens"] == DEFAULT_MAX_TOKENS


def test_a_plain_request_has_no_optional_fields() -> None:
    assert to_anthropic({"model": "x", "messages": USER}, "m", 10) == {
        "model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }


def test_unknown_extra_fields_pass_through_and_never_override_mapped_ones() -> None:
    body = {"messages": USER, "thinking": {"type": "enabled", "budget_tokens": 1024}, "system": "sneaky",
            "fake": {"status": 429}}
    out = to_anthropic({**body, "messages": [{"role": "system", "content": "real"}, *USER]}, "m")
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert out["fake"] == {"status": 429}
    assert out["system"] == "real"


def test_empty_contents_are_dropped_and_same_role_turns_merge() -> None:
    out = to_anthropic({"messages": [
        {"role": "system", "content": ""},
        {"role": "user", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "a"}]},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "b"},
    ]}, "m")
    assert "system" not in out
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                             {"type": "text", "text": "b"}]}]


def test_a_request_with_nothing_to_say_is_a_400() -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_anthropic({"messages": [{"role": "system", "content": "only"}, {"role": "user", "content": ""}]}, "m")
    assert caught.value.param == "messages"


def test_json_schema_becomes_structured_outputs() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    out = to_anthropic({"messages": USER, "response_format": {"type": "json_schema", "json_schema": {
        "name": "weather", "strict": True, "schema": schema}}}, "m")
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "output_config" not in to_anthropic({"messages": USER, "response_format": {"type": "text"}}, "m")


def test_json_mode_is_a_forced_tool_whose_input_is_any_object() -> None:
    # Structured outputs take only closed objects (additionalProperties: false): JSON mode cannot go there.
    out = to_anthropic({"messages": USER, "response_format": {"type": "json_object"}}, "m")
    assert "output_config" not in out
    [tool] = out["tools"]
    assert (tool["name"], tool["input_schema"]) == (JSON_TOOL, {"type": "object"})
    assert out["tool_choice"] == {"type": "tool", "name": JSON_TOOL}


def test_json_mode_reads_the_forced_tool_back_as_text() -> None:
    message = {"id": "m", "content": [{"type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {"a": [1, "b"]}}],
               "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 4}}
    body, _ = from_anthropic(message, 0, json_mode=True)
    [choice] = body["choices"]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert orjson.loads(choice["message"]["content"]) == {"a": [1, "b"]}
    # Without JSON mode a tool of that name is an ordinary tool call.
    plain, _ = from_anthropic(message, 0)
    assert plain["choices"][0]["finish_reason"] == "tool_calls" and plain["choices"][0]["message"]["tool_calls"]


def test_json_mode_streams_the_forced_tool_as_text() -> None:
    events = [
        {"event": "message_start", "data": {"type": "message_start", "message": {
            "id": "m", "model": "claude", "usage": {"input_tokens": 3, "output_tokens": 1}}}},
        {"event": "content_block_start", "data": {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {}}}},
        *({"event": "content_block_delta", "data": {"type": "content_block_delta", "index": 0,
                                                    "delta": {"type": "input_json_delta", "partial_json": part}}}
          for part in ('{"a": ', '[1, "b"]', "}")),
        {"event": "content_block_stop", "data": {"type": "content_block_stop", "index": 0}},
        {"event": "message_delta", "data": {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                                            "usage": {"output_tokens": 5}}},
        {"event": "message_stop", "data": {"type": "message_stop"}},
    ]
    translator = AnthropicStreamTranslator(False, 1, "claude", json_mode=True)
    rebuilt = reassemble(openai_events(translator.feed(sse(events)) + translator.finish()))
    assert orjson.loads(rebuilt["text"]) == {"a": [1, "b"]}
    assert rebuilt["calls"] == [] and rebuilt["finish"] == "stop"


def test_very_long_content_is_kept_whole() -> None:
    text = "word " * 200_000
    out = to_anthropic({"messages": [{"role": "user", "content": text}]}, "m")
    assert out["messages"][0]["content"][0]["text"] == text


@pytest.mark.parametrize(("body", "param"), [
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"response_format": {"type": "json_object"}, "tools": [{"type": "function", "function": {"name": "f"}}]},
     "response_format"),
    ({"response_format": {"type": "json_object"}, "thinking": {"type": "enabled", "budget_tokens": 1024}},
     "response_format"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"messages": [{"role": "function", "content": "x", "name": "f"}]}, "messages[0].role"),
    ({"messages": ["not an object"]}, "messages[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "assistant",
                    "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{oops"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"tools": [{"type": "code_interpreter"}]}, "tools[0]"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"stop": [1, 2]}, "stop"),
])
def test_what_anthropic_cannot_do_is_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_anthropic({"messages": USER, **body}, "m")
    assert caught.value.status == 400
    assert caught.value.param == param


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    ("auto", None, {"type": "auto"}),
    ("none", False, {"type": "none"}),
    ({"type": "function", "function": {"name": "f"}}, False,
     {"type": "tool", "name": "f", "disable_parallel_tool_use": True}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
])
def test_tool_choice(choice: Any, parallel: Any, expected: dict[str, Any]) -> None:
    body = {"messages": USER, "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice,
            "parallel_tool_calls": parallel}
    assert to_anthropic(body, "m")["tool_choice"] == expected


def test_response_maps_blocks_stop_reason_and_cache_usage() -> None:
    case = fixture("anthropic_message.json")
    body, usage = from_anthropic(case["anthropic"], 1_700_000_000)
    assert body == case["openai"]
    # Anthropic's input_tokens excludes the cache; OpenAI's prompt_tokens includes it.
    assert usage == Usage(prompt_tokens=21 + 188 + 1000, completion_tokens=93, cached_tokens=1000)


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter"),
    (None, "stop"), ("something_new", "stop"),
])
def test_stop_reasons(stop_reason: str | None, finish: str) -> None:
    body, _ = from_anthropic({"content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}, 0)
    assert body["choices"][0]["finish_reason"] == finish


def test_an_empty_answer_is_an_empty_string() -> None:
    body, usage = from_anthropic({"id": "m", "content": [], "stop_reason": "end_turn", "usage": {}}, 0)
    assert body["choices"][0]["message"]["content"] == ""
    assert usage == Usage()


def _translate(events: list[dict[str, Any]], wants_usage: bool) -> tuple[AnthropicStreamTranslator, bytes]:
    translator = AnthropicStreamTranslator(wants_usage, 1_700_000_000, "claude")
    out = translator.feed(sse(events))
    return translator, out + translator.finish()


def test_stream_every_event_type_multi_block_tool_calls() -> None:
    case = fixture("anthropic_stream.json")
    translator, out = _translate(case["events"], wants_usage=True)
    events = openai_events(out)
    assert deltas(events) == case["openai_deltas"]
    assert events[-2] == {"id": "msg_014p7gG3wDgGV9EUtLvnow3U", "object": "chat.completion.chunk",
                          "created": 1_700_000_000, "model": "claude-sonnet-4-5-20250929", "choices": [],
                          "usage": case["usage"]}
    assert events[-1] == "[DONE]"
    assert all(e["id"] == "msg_014p7gG3wDgGV9EUtLvnow3U" for e in events[:-1])
    assert translator.usage == Usage(prompt_tokens=582, completion_tokens=89, cached_tokens=100)
    assert translator.done
    assert b": ping\n\n" in out  # keep-alives are forwarded as SSE comments
    rebuilt = reassemble(events)
    assert [orjson.loads(c["arguments"]) for c in rebuilt["calls"]] == [{"location": "San Francisco, CA"},
                                                                        {"tz": "PST"}]


def test_stream_usage_chunk_only_when_the_client_asked() -> None:
    translator, out = _translate(fixture("anthropic_stream.json")["events"], wants_usage=False)
    events = openai_events(out)
    assert all(e == "[DONE]" or e["choices"] for e in events)
    assert translator.usage is not None and translator.usage.completion_tokens == 89


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=40))
def test_stream_output_does_not_depend_on_how_the_bytes_were_split(cuts: list[int]) -> None:
    data = sse(fixture("anthropic_stream.json")["events"]).replace(b"\n", b"\r\n")
    whole = AnthropicStreamTranslator(True, 1, "m")
    expected = openai_events(whole.feed(data) + whole.finish())
    assert openai_events(split_feed(AnthropicStreamTranslator(True, 1, "m"), data, cuts)) == expected


def test_stream_error_event_goes_in_band_after_what_came_before() -> None:
    events = [
        *fixture("anthropic_stream.json")["events"][:8],
        {"event": "error", "data": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}},
        {"event": "message_stop", "data": {"type": "message_stop"}},
    ]
    translator = AnthropicStreamTranslator(True, 1, "m")
    out = translator.feed(sse(events))
    assert reassemble(openai_events(out))["text"] == "Okay, let's check"
    with pytest.raises(GatewayError) as caught:
        translator.finish()
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (503, "overloaded", True)
    assert not translator.done
    assert translator.usage == Usage(prompt_tokens=582, completion_tokens=2, cached_tokens=100)


def test_a_stream_that_ends_without_message_stop_is_an_error() -> None:
    translator = AnthropicStreamTranslator(False, 1, "m")
    translator.feed(sse(fixture("anthropic_stream.json")["events"][:9]))
    with pytest.raises(UpstreamError) as caught:
        translator.finish()
    assert caught.value.code == "upstream_stream_truncated"


def test_stream_of_an_empty_answer() -> None:
    start = fixture("anthropic_stream.json")["events"][0]
    _, out = _translate([start, {"event": "message_stop", "data": {"type": "message_stop"}}], wants_usage=False)
    assert deltas(openai_events(out)) == [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None},
                                          {"delta": {}, "finish_reason": "stop"}]


def _envelope(kind: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"})


def test_overloaded_is_a_retryable_503() -> None:
    error = map_error(529, {"retry-after": "3"}, _envelope("overloaded_error", "Overloaded"), "d")
    assert (error.status, error.type, error.code, error.retry_after) == (503, "server_error", "overloaded", 3.0)
    assert error.headers()["x-should-retry"] == "true"


def test_rate_limit_stays_429_with_retry_after() -> None:
    error = map_error(429, {"retry-after": "7"}, _envelope("rate_limit_error", "slow down"), "d")
    assert isinstance(error, RateLimited)
    assert (error.status, error.retry_after, error.message) == (429, 7.0, "slow down")


@pytest.mark.parametrize("message", [
    "prompt is too long: 208310 tokens > 200000 maximum",
    "input length and `max_tokens` exceed context limit: 199000 + 21333 > 200000",
])
def test_context_length_errors(message: str) -> None:
    error = map_error(400, {}, _envelope("invalid_request_error", message), "d")
    assert isinstance(error, ContextLengthExceeded)
    assert (error.status, error.code, error.param) == (400, "context_length_exceeded", "messages")


@pytest.mark.parametrize(("status", "kind", "expected"), [
    (400, "invalid_request_error", (400, "invalid_request_error", None)),
    (401, "authentication_error", (502, "server_error", "upstream_auth_failed")),
    (403, "permission_error", (502, "server_error", "upstream_auth_failed")),
    (402, "billing_error", (502, "server_error", "upstream_billing_error")),
    (404, "not_found_error", (502, "server_error", "upstream_not_found")),
    (413, "request_too_large", (400, "invalid_request_error", None)),
    (500, "api_error", (502, "server_error", "upstream_error")),
    (504, "timeout_error", (504, "server_error", None)),
])
def test_statuses(status: int, kind: str, expected: tuple[int, str, str | None]) -> None:
    error = map_error(status, {}, _envelope(kind, "m"), "d")
    assert (error.status, error.type, error.code) == expected


def test_error_messages_never_echo_a_key_and_garbage_bodies_still_map() -> None:
    error = map_error(400, {}, _envelope("invalid_request_error", "bad key sk-ant-api03-abcdefghijkl"), "d")
    assert "sk-ant" not in error.message and "[redacted]" in error.message
    assert map_error(529, {}, b"<html>", "d").status == 503
    assert map_error(500, {}, b"", "dep-1").message == "deployment dep-1 answered HTTP 500"


def test_a_cancelled_stream_is_charged_for_the_deltas_it_relayed() -> None:
    start = fixture("anthropic_stream.json")["events"][0]
    text = [{"event": "content_block_delta", "data": {"type": "content_block_delta", "index": 0,
                                                      "delta": {"type": "text_delta", "text": f"w{i} "}}}
            for i in range(5)]
    translator = AnthropicStreamTranslator(False, 1, "m")
    translator.feed(sse([start, *text]))
    assert translator.usage == Usage(prompt_tokens=582, completion_tokens=5, cached_tokens=100)
