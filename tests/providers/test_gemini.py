"""The Gemini adapter's pure translations, from JSON fixtures, without a network."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest

from gateway.core.errors import ContextLengthExceeded, GatewayError, InvalidRequest, RateLimited, UpstreamError
from gateway.core.types import Usage
from gateway.providers.gemini.embeddings import from_gemini_embeddings, to_gemini_embeddings
from gateway.providers.gemini.errors import map_error
from gateway.providers.gemini.request import gemini_schema, to_gemini
from gateway.providers.gemini.response import finish_reason, from_gemini
from gateway.providers.gemini.stream import GeminiStreamTranslator
from tests.providers.helpers import data_frames, deltas, fixture, openai_events, split_feed

USER = [{"role": "user", "content": "hi"}]


def test_request_maps_every_field() -> None:
    case = fixture("gemini_request.json")
    assert to_gemini(case["openai"]) == case["gemini"]


def test_a_plain_request() -> None:
    assert to_gemini({"model": "g", "messages": USER}) == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_json_mode_and_remote_images() -> None:
    out = to_gemini({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png?x=1"}}]}],
        "response_format": {"type": "json_object"}})
    assert out["contents"][0]["parts"] == [{"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a.png?x=1"}}]
    assert out["generationConfig"] == {"responseMimeType": "application/json"}


def test_schema_keeps_only_what_gemini_knows_even_deep_inside() -> None:
    schema = {"type": "object", "additionalProperties": False, "$defs": {},
              "properties": {"additionalProperties": {"type": "string", "examples": ["x"]},
                             "list": {"type": "array", "items": {"anyOf": [{"type": "string", "const": "a"}]}}}}
    assert gemini_schema(schema) == {"type": "object", "properties": {
        "additionalProperties": {"type": "string"},
        "list": {"type": "array", "items": {"anyOf": [{"type": "string"}]}}}}


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"logprobs": True}, "logprobs"),
    ({"tool_choice": {"type": "function"}}, "tool_choice"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": ""}]}, "messages"),
])
def test_bad_requests_are_400s(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_gemini({"messages": USER, **body})
    assert caught.value.param == param


def test_response_maps_parts_function_calls_finish_reasons_and_usage() -> None:
    case = fixture("gemini_response.json")
    body, usage = from_gemini(case["gemini"], "gemini", 1_700_000_000)
    assert body == case["openai"]
    # Cached tokens are already inside promptTokenCount; thoughts are billed as output.
    assert usage == Usage(prompt_tokens=120, completion_tokens=42, cached_tokens=100)


def test_a_blocked_prompt_has_one_filtered_choice() -> None:
    body, usage = from_gemini({"promptFeedback": {"blockReason": "SAFETY"}}, "g", 0)
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "", "refusal": None},
                                "logprobs": None, "finish_reason": "content_filter"}]
    assert usage is None and "usage" not in body


@pytest.mark.parametrize(("reason", "calls", "expected"), [
    ("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", False, "length"),
    ("SAFETY", False, "content_filter"), ("RECITATION", False, "content_filter"),
    ("BLOCKLIST", False, "content_filter"), ("PROHIBITED_CONTENT", False, "content_filter"),
    ("SPII", False, "content_filter"), ("LANGUAGE", False, "stop"), ("OTHER", False, "stop"),
])
def test_finish_reasons(reason: str, calls: bool, expected: str) -> None:
    assert finish_reason(reason, calls) == expected


def test_stream_text_and_function_calls() -> None:
    case = fixture("gemini_stream.json")
    translator = GeminiStreamTranslator(True, 1, "gemini")
    events = openai_events(translator.feed(data_frames(case["frames"], b"\r\n\r\n")) + translator.finish())
    assert deltas(events) == case["openai_deltas"]
    assert events[-2]["usage"] == case["usage"] and events[-2]["choices"] == []
    assert events[-1] == "[DONE]"
    assert {e["id"] for e in events[:-1]} == {"r-1"}
    assert translator.usage == Usage(prompt_tokens=9, completion_tokens=7)


def test_stream_without_usage_and_split_anywhere() -> None:
    frames = data_frames(fixture("gemini_stream.json")["frames"], b"\r\n\r\n")
    whole = GeminiStreamTranslator(False, 1, "g")
    expected = openai_events(whole.feed(frames) + whole.finish())
    assert all(e == "[DONE]" or e["choices"] for e in expected)
    for step in (1, 7, 64):
        pieces = GeminiStreamTranslator(False, 1, "g")
        assert openai_events(split_feed(pieces, frames, list(range(step, len(frames), step)))) == expected


def test_stream_that_ends_before_a_finish_reason_is_an_error() -> None:
    translator = GeminiStreamTranslator(False, 1, "g")
    translator.feed(data_frames(fixture("gemini_stream.json")["frames"][:2]))
    with pytest.raises(UpstreamError) as caught:
        translator.finish()
    assert caught.value.code == "upstream_stream_truncated"


def test_stream_error_frame_goes_in_band() -> None:
    translator = GeminiStreamTranslator(False, 1, "g")
    frames = [*fixture("gemini_stream.json")["frames"][:1],
              {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}]
    out = translator.feed(data_frames(frames))
    assert openai_events(out)[-1]["choices"][0]["delta"] == {"content": "Let me "}
    with pytest.raises(GatewayError) as caught:
        translator.finish()
    assert caught.value.status == 503


def test_stream_of_a_blocked_prompt() -> None:
    translator = GeminiStreamTranslator(False, 1, "g")
    out = translator.feed(data_frames([{"promptFeedback": {"blockReason": "SAFETY"}}])) + translator.finish()
    assert deltas(openai_events(out))[-1] == {"delta": {}, "finish_reason": "content_filter"}


def test_embeddings_one_input_and_many() -> None:
    one = to_gemini_embeddings({"input": "a b", "dimensions": 3, "taskType": "RETRIEVAL_QUERY"}, "text-embedding-004")
    assert one == ("embedContent", {"content": {"parts": [{"text": "a b"}]}, "outputDimensionality": 3,
                             "taskType": "RETRIEVAL_QUERY"})
    method, body = to_gemini_embeddings({"input": ["a", "b"], "encoding_format": "float"}, "e")
    assert method == "batchEmbedContents"
    assert body == {"requests": [{"model": "models/e", "content": {"parts": [{"text": "a"}]}},
                                 {"model": "models/e", "content": {"parts": [{"text": "b"}]}}]}
    with pytest.raises(InvalidRequest):
        to_gemini_embeddings({"input": [1, 2, 3]}, "e")


def test_embeddings_answer_as_floats_or_base64_with_estimated_usage() -> None:
    response = {"embeddings": [{"values": [0.5, -1.0]}, {"values": [0.25, 0.0]}]}
    body, usage = from_gemini_embeddings(response, {"input": ["abcdefgh", "x"]}, "e")
    assert [d["embedding"] for d in body["data"]] == [[0.5, -1.0], [0.25, 0.0]]
    assert usage == Usage(prompt_tokens=3, estimated=True) and body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    body, _ = from_gemini_embeddings({"embedding": {"values": [0.5, -1.0]}},
                                     {"input": "x", "encoding_format": "base64"}, "e")
    assert struct.unpack("<2f", base64.b64decode(body["data"][0]["embedding"])) == (0.5, -1.0)
    with pytest.raises(UpstreamError):
        from_gemini_embeddings({"nothing": 1}, {"input": "x"}, "e")


def _google(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return orjson.dumps({"error": error})


def test_errors() -> None:
    rate = map_error(429, {}, _google(429, "RESOURCE_EXHAUSTED", "quota", [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "27s"}]), "d")
    assert isinstance(rate, RateLimited) and rate.retry_after == 27.0
    assert map_error(429, {"retry-after": "2"}, _google(429, "RESOURCE_EXHAUSTED", "q"), "d").retry_after == 2.0
    context = map_error(400, {}, _google(400, "INVALID_ARGUMENT", "The input token count (1048577) exceeds the "
                                                                  "maximum number of tokens allowed (1048576)."), "d")
    assert isinstance(context, ContextLengthExceeded)
    bad_key = map_error(400, {}, _google(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                                         [{"reason": "API_KEY_INVALID"}]), "d")
    assert (bad_key.status, bad_key.code) == (502, "upstream_auth_failed")
    overloaded = map_error(503, {}, _google(503, "UNAVAILABLE", "The model is overloaded."), "d")
    assert (overloaded.status, overloaded.message) == (503, "The model is overloaded.")
    invalid = map_error(400, {}, _google(400, "INVALID_ARGUMENT", "Unknown name \"foo\""), "d")
    assert (invalid.status, invalid.type) == (400, "invalid_request_error")
    assert map_error(500, {}, b"[{\"error\": {\"code\": 500, \"message\": \"boom\"}}]", "d").status == 502
