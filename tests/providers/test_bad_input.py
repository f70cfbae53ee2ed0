"""Whatever a client sends, a translator answers with a request or a 400, never another exception."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.errors import GatewayError, InvalidRequest
from gateway.dialects.anthropic.request import to_openai
from gateway.dialects.anthropic.response import to_message
from gateway.dialects.anthropic.stream import MessagesStreamTranslator
from gateway.providers.anthropic.request import to_anthropic
from gateway.providers.anthropic.response import from_anthropic
from gateway.providers.anthropic.stream import AnthropicStreamTranslator
from gateway.providers.gemini.embeddings import to_gemini_embeddings
from gateway.providers.gemini.request import to_gemini
from gateway.providers.gemini.response import from_gemini
from gateway.providers.gemini.stream import GeminiStreamTranslator

SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(
    ["", "x", "user", "assistant", "tool", "system", "text", "image_url", "function", "data:image/png;base64,AA==",
     "auto", "required", "none", "{}", '{"a": 1}', "tool_use", "tool_result", "image", "base64", "url"])
KEYS = st.sampled_from(["role", "content", "type", "text", "image_url", "url", "tool_calls", "tool_call_id", "id",
                        "function", "name", "arguments", "parameters", "source", "media_type", "data", "input",
                        "tool_use_id", "is_error", "description", "input_schema", "message", "finish_reason",
                        "usage", "prompt_tokens", "parts", "functionCall", "args", "index", "finishReason"])
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                    max_leaves=25)
OPENAI_FIELDS = st.fixed_dictionaries({"messages": st.lists(JSON, min_size=1, max_size=4)}, optional={
    "tools": JSON, "tool_choice": JSON, "stop": JSON, "max_tokens": JSON, "n": JSON, "response_format": JSON,
    "temperature": JSON, "parallel_tool_calls": JSON, "logprobs": JSON, "user": JSON})
ANTHROPIC_FIELDS = st.fixed_dictionaries({"model": st.just("m"), "max_tokens": st.just(5),
                                          "messages": st.lists(JSON, min_size=1, max_size=4)},
                                         optional={"system": JSON, "tools": JSON, "tool_choice": JSON,
                                                   "stop_sequences": JSON, "metadata": JSON, "stream": JSON})


def _safely(translate: Any, body: Any) -> None:
    try:
        translate(body)
    except InvalidRequest as error:
        assert error.status == 400


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPENAI_FIELDS)
def test_openai_requests_to_providers(body: dict[str, Any]) -> None:
    _safely(lambda b: to_anthropic(b, "m"), body)
    _safely(to_gemini, body)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANTHROPIC_FIELDS)
def test_anthropic_requests_to_openai(body: dict[str, Any]) -> None:
    _safely(to_openai, orjson.dumps(body))


@given(JSON)
def test_embedding_inputs(value: Any) -> None:
    _safely(lambda v: to_gemini_embeddings({"input": v}, "m"), value)


EVENT_TYPES = st.sampled_from(["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                               "message_delta", "message_stop", "ping", "error", "other"])
EVENT = st.fixed_dictionaries({"type": EVENT_TYPES}, optional={
    "message": JSON, "index": JSON, "content_block": JSON, "delta": JSON, "usage": JSON, "error": JSON,
    "candidates": JSON, "choices": JSON, "usageMetadata": JSON, "promptFeedback": JSON})


def _frames(events: list[Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENT, max_size=8))
def test_stream_translators_take_any_events(events: list[Any]) -> None:
    data = _frames(events)
    for translator in (AnthropicStreamTranslator(True, 1, "m"), GeminiStreamTranslator(True, 1, "m"),
                       MessagesStreamTranslator("m")):
        try:
            translator.feed(data)
            translator.finish()
        except GatewayError:
            pass


RESPONSE = st.fixed_dictionaries({}, optional={
    "content": JSON, "usage": JSON, "stop_reason": JSON, "candidates": JSON, "usageMetadata": JSON, "choices": JSON,
    "id": JSON, "model": JSON})


@settings(max_examples=150, deadline=None)
@given(RESPONSE)
def test_upstream_answers_of_any_shape(response: dict[str, Any]) -> None:
    # An upstream's odd answer must not become a 500 with a traceback.
    from_anthropic(response, 0)
    from_gemini(response, "m", 0)
    to_message(response)
