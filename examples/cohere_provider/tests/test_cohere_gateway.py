"""The plugin, found through its entry point, drives Cohere's fake through a real gateway."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest
from cohere_provider import CohereProvider

from gateway.providers.registry import provider_classes

MESSAGES: list[Any] = [{"role": "user", "content": "alpha beta"}]
TOOL = {"fake": {"tool_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}}
TOOLS: list[Any] = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def test_the_entry_point_is_installed() -> None:
    assert provider_classes()["cohere"] is CohereProvider


def test_chat_and_stream(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model="command", messages=MESSAGES)
    assert completion.choices[0].message.content == " ".join(["alpha", "beta"] * 8)
    assert completion.usage is not None and completion.usage.prompt_tokens == 2
    chunks = list(sdk.chat.completions.create(model="command", messages=MESSAGES, stream=True,
                                              stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 16


def test_tool_calls(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model="command", messages=MESSAGES, tools=TOOLS, extra_body=TOOL)
    [call] = completion.choices[0].message.tool_calls or []
    assert call.type == "function" and orjson.loads(call.function.arguments) == {"city": "Paris"}
    stream = sdk.chat.completions.create(model="command", messages=MESSAGES, tools=TOOLS, extra_body=TOOL, stream=True)
    arguments = "".join(c.choices[0].delta.tool_calls[0].function.arguments or ""  # type: ignore[index, union-attr]
                        for c in stream if c.choices and c.choices[0].delta.tool_calls)
    assert orjson.loads(arguments) == {"city": "Paris"}


def test_errors(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="command", messages=MESSAGES, extra_body={"fake": {"status": 429}})
    with pytest.raises(openai.APIError):
        for _ in sdk.chat.completions.create(model="command", messages=MESSAGES, stream=True,
                                             extra_body={"fake": {"error_after": 1}}):
            pass
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model="command", input="x")
    assert caught.value.code == "unsupported_endpoint"
