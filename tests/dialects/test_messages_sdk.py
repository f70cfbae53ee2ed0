"""The official anthropic SDK against `/v1/messages`, served by an OpenAI-compatible backend ("gpt")
and by the Anthropic adapter ("claude"), through a real gateway process."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from tests.procs import MASTER_KEY, Gateway

BACKENDS = ["gpt", "claude"]
ECHO = " ".join(["alpha", "beta", "gamma"][i % 3] for i in range(16))
MESSAGES: list[Any] = [{"role": "user", "content": "alpha beta gamma"}]
TOOLS: list[Any] = [{"name": "get_weather", "description": "Weather by city",
                     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
TOOL_CALL = {"fake": {"tool_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}}


@pytest.mark.parametrize("model", BACKENDS)
def test_message(claude_sdk: anthropic.Anthropic, model: str) -> None:
    message = claude_sdk.messages.create(model=model, max_tokens=100, system="be brief", messages=MESSAGES)
    assert message.type == "message" and message.role == "assistant"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == ECHO  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    usage = message.usage
    assert (usage.input_tokens + (usage.cache_read_input_tokens or 0), usage.output_tokens) == (5, 16)
    assert message._request_id and message._request_id.startswith("req_")


def test_cache_reads_survive_both_translations(claude_sdk: anthropic.Anthropic) -> None:
    # The Anthropic fake reports the system prompt's words as cache reads.
    usage = claude_sdk.messages.create(model="claude", max_tokens=100, system="be brief", messages=MESSAGES).usage
    assert (usage.input_tokens, usage.cache_read_input_tokens) == (3, 2)


@pytest.mark.parametrize("model", BACKENDS)
def test_stream(claude_sdk: anthropic.Anthropic, model: str) -> None:
    with claude_sdk.messages.stream(model=model, max_tokens=100, system="be brief", messages=MESSAGES) as stream:
        kinds = []
        text = ""
        for event in stream:
            kinds.append(event.type)
            if event.type == "text":
                text += event.text
        final = stream.get_final_message()
    assert text == ECHO
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0), final.usage.output_tokens) == (5, 16)


@pytest.mark.parametrize("model", BACKENDS)
def test_tool_use_then_tool_result(claude_sdk: anthropic.Anthropic, model: str) -> None:
    message = claude_sdk.messages.create(model=model, max_tokens=100, messages=MESSAGES, tools=TOOLS,
                                         extra_body=TOOL_CALL)
    assert message.stop_reason == "tool_use"
    [tool_use] = [block for block in message.content if block.type == "tool_use"]
    assert (tool_use.name, tool_use.input) == ("get_weather", {"city": "Paris"})
    turns: list[Any] = [
        *MESSAGES,
        {"role": "assistant", "content": [block.model_dump() for block in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny today"}]},
    ]
    follow_up = claude_sdk.messages.create(model=model, max_tokens=100, tools=TOOLS, messages=turns)
    assert follow_up.stop_reason == "end_turn"
    assert "sunny" in follow_up.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("model", BACKENDS)
def test_streamed_tool_use(claude_sdk: anthropic.Anthropic, model: str) -> None:
    with claude_sdk.messages.stream(model=model, max_tokens=100, messages=MESSAGES, tools=TOOLS,
                                    extra_body=TOOL_CALL) as stream:
        deltas = [event.partial_json for event in stream if event.type == "input_json"]
        final = stream.get_final_message()
    [tool_use] = [block for block in final.content if block.type == "tool_use"]
    assert tool_use.input == {"city": "Paris"} and "".join(deltas) == '{"city": "Paris"}'
    assert final.stop_reason == "tool_use"


def test_max_tokens_reaches_the_backend(claude_sdk: anthropic.Anthropic) -> None:
    message = claude_sdk.messages.create(model="claude", max_tokens=3, messages=MESSAGES)
    assert message.stop_reason == "max_tokens" and message.content[0].text == "alpha beta gamma"  # type: ignore[union-attr]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", BACKENDS)
def test_rate_limit(claude_sdk: anthropic.Anthropic, model: str, stream: bool) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude_sdk.messages.create(model=model, max_tokens=10, messages=MESSAGES, stream=stream,
                                   extra_body={"fake": {"status": 429, "retry_after": 2}})
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.response.headers["request-id"].startswith("req_")


def test_anthropic_overloaded_through_both_translations(claude_sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.InternalServerError) as caught:
        claude_sdk.messages.create(model="claude", max_tokens=10, messages=MESSAGES,
                                   extra_body={"fake": {"status": 529}})
    assert caught.value.status_code == 503
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]



@pytest.mark.parametrize("model", BACKENDS)
def test_a_stream_that_fails_before_it_starts(claude_sdk: anthropic.Anthropic, model: str) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        with claude_sdk.messages.stream(model=model, max_tokens=10, messages=MESSAGES,
                                        extra_body={"fake": {"status": 429}}) as stream:
            stream.get_final_message()
    assert caught.value.status_code == 429
    body: dict[str, Any] = caught.value.body  # type: ignore[assignment]
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert caught.value.response.headers["request-id"] == body["request_id"]
    assert caught.value.response.headers["content-type"] == "application/json"

@pytest.mark.parametrize("model", BACKENDS)
def test_a_failure_mid_stream(claude_sdk: anthropic.Anthropic, model: str) -> None:
    text = ""
    with pytest.raises(anthropic.APIStatusError) as caught:
        with claude_sdk.messages.stream(model=model, max_tokens=100, messages=MESSAGES,
                                        extra_body={"fake": {"error_after": 2}}) as stream:
            for event in stream:
                text += event.text if event.type == "text" else ""
    assert text == "alpha beta"
    assert "error" in str(caught.value)


def test_auth_and_unknown_models(messages_gateway: Gateway) -> None:
    wrong = anthropic.Anthropic(base_url=messages_gateway.base, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as denied:
        wrong.messages.create(model="gpt", max_tokens=10, messages=MESSAGES)
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    sdk = anthropic.Anthropic(base_url=messages_gateway.base, api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.create(model="no-such-model", max_tokens=10, messages=MESSAGES)
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.create(model="no-such-model", max_tokens=10, messages=MESSAGES, stream=True)


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "not valid JSON"),
    (b'{"model": "gpt", "messages": [{"role": "user", "content": "x"}]}', "max_tokens"),
    (b'{"model": "gpt", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]}', "video"),
])
def test_bad_requests_get_anthropic_errors(messages_gateway: Gateway, body: bytes, message: str) -> None:
    response = httpx.post(messages_gateway.base + "/v1/messages", content=body,
                          headers={"x-api-key": MASTER_KEY, "content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert message in error["error"]["message"]
    assert response.headers["request-id"] == response.headers["x-request-id"]
