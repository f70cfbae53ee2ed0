"""A deployment that speaks only the Responses API (`responses_api: only`), reached by chat clients
(the openai SDK) and by Messages clients (the anthropic SDK) through a real gateway: the fake sees
`POST /v1/responses`, the clients their own shapes."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from tests.procs import MASTER_KEY, FakeUpstream, Gateway

PROMPT = "alpha beta gamma"
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
TOOL_CALL = {"fake": {"tool_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}}


@pytest.fixture
def chat_sdk(responses_gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=responses_gateway.url, api_key=MASTER_KEY, max_retries=0)


def upstream_paths(upstream: FakeUpstream, request_id: str) -> list[str]:
    return [r["path"] for r in upstream.requests(request_id)]


def test_chat_completion(chat_sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    raw = chat_sdk.chat.completions.with_raw_response.create(
        model="only", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}])
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert set((completion.choices[0].message.content or "").split()) == {"alpha", "beta", "gamma"}
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 5  # every input word
    assert upstream_paths(upstream, raw.headers["x-request-id"]) == ["/v1/responses"]


def test_chat_stream_with_usage(chat_sdk: openai.OpenAI) -> None:
    chunks = list(chat_sdk.chat.completions.create(model="only", messages=[{"role": "user", "content": PROMPT}],
                                                   stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert set(text.split()) == {"alpha", "beta", "gamma"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(text.split())


@pytest.mark.parametrize("streamed", [False, True])
def test_chat_tool_call(chat_sdk: openai.OpenAI, streamed: bool) -> None:
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    if streamed:
        chunks = list(chat_sdk.chat.completions.create(model="only", messages=messages, tools=TOOLS, stream=True,
                                                       extra_body=TOOL_CALL))
        calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
        name = next(call.function.name for call in calls if call.function and call.function.name)
        arguments = "".join(call.function.arguments or "" for call in calls if call.function)
        call_id = next(call.id for call in calls if call.id)
    else:
        completion = chat_sdk.chat.completions.create(model="only", messages=messages, tools=TOOLS,
                                                      extra_body=TOOL_CALL)
        assert completion.choices[0].finish_reason == "tool_calls"
        [call] = completion.choices[0].message.tool_calls or []
        name, arguments, call_id = call.function.name, call.function.arguments, call.id  # type: ignore[union-attr]
    assert (name, json.loads(arguments)) == ("get_weather", {"city": "Paris"})
    follow = chat_sdk.chat.completions.create(model="only", tools=TOOLS, messages=[
        *messages,
        {"role": "assistant", "tool_calls": [{"id": call_id, "type": "function",
                                              "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny today"},
    ])
    assert "sunny" in (follow.choices[0].message.content or "")


def test_chat_option_the_responses_api_lacks_is_a_400(chat_sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat_sdk.chat.completions.create(model="only", messages=[{"role": "user", "content": PROMPT}], stop=["x"])
    assert caught.value.body["param"] == "stop"  # type: ignore[index]


@pytest.mark.parametrize("streamed", [False, True])
def test_messages_client(responses_gateway: Gateway, streamed: bool) -> None:
    claude = anthropic.Anthropic(base_url=responses_gateway.base, api_key=MASTER_KEY, max_retries=0)
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    if streamed:
        with claude.messages.stream(model="only", max_tokens=100, system="be brief", messages=messages) as stream:
            message = stream.get_final_message()
    else:
        message = claude.messages.create(model="only", max_tokens=100, system="be brief", messages=messages)
    assert message.stop_reason == "end_turn"
    assert set(message.content[0].text.split()) == {"alpha", "beta", "gamma"}  # type: ignore[union-attr]
    assert message.usage.output_tokens == len(message.content[0].text.split())  # type: ignore[union-attr]
