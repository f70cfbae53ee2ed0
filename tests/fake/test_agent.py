"""The fakes' scripted agent model and structured output: on chat, on Anthropic's messages, and pure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import orjson
import pytest
import pytest_asyncio

from gateway.fake import agent
from gateway.fake.behaviour import Behaviour
from gateway.fake.providers import start_fake
from gateway.fake.server import FakeUpstream, start_server

SHELL_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["cmd"], "properties": {
    "cmd": {"type": "string"}, "workdir": {"type": "string"}, "tty": {"type": "boolean"}}}
CHAT_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "Agent", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "Bash", "parameters": SHELL_SCHEMA}},
]


def test_the_tool_named_by_the_user_with_the_quoted_words() -> None:
    tools = [("Agent", {}), ("Bash", SHELL_SCHEMA), ("Bash-extra", {})]
    assert agent.pick(tools, "Use the Bash tool to run `ls -la`") == ("Bash", SHELL_SCHEMA)
    assert agent.pick(tools, "nothing named") == ("Agent", {})
    assert agent.arguments(SHELL_SCHEMA, "run `ls -la` please") == '{"cmd":"ls -la"}'
    assert agent.quoted("say \"hi there\" or 'bye'") == "hi there"
    assert agent.quoted("What's up?") is None


def test_values_that_fit_the_schema() -> None:
    schema = {"type": "object", "required": ["a", "b", "c", "d", "e", "f", "g", "h"], "properties": {
        "a": {"type": "string"}, "b": {"type": "integer", "minimum": 3}, "c": {"type": "number"},
        "d": {"type": "boolean"}, "e": {"enum": ["x", "y"]}, "f": {"type": "array", "items": {"type": "string"},
                                                                    "minItems": 1},
        "g": {"anyOf": [{"type": "null"}, {"type": "string"}]}, "h": {"type": ["null", "integer"]},
        "skipped": {"type": "string"}}}
    assert agent.fit(schema, "first") == {"a": "first", "b": 3, "c": 1.0, "d": True, "e": "x", "f": ["fake"],
                                          "g": None, "h": 1}
    assert agent.json_schema_of({"type": "json_object"}) == {}
    assert agent.json_schema_of({"type": "text"}) is None
    assert agent.json_reply({}) == '{"answer":"fake"}'


@pytest_asyncio.fixture
async def agent_fake() -> AsyncIterator[FakeUpstream]:
    async with await start_server(behaviour=Behaviour(agent=True)) as upstream:
        yield upstream


async def test_chat_agent_calls_then_answers_the_result(agent_fake: FakeUpstream) -> None:
    sdk = openai.AsyncOpenAI(base_url=agent_fake.url, api_key="x", max_retries=0)
    ask = [{"role": "user", "content": [{"type": "text", "text": "<reminder>Agent</reminder>"},
                                        {"type": "text", "text": "Use Bash to run 'echo hi'"}]}]
    first = await sdk.chat.completions.create(model="m", messages=ask, tools=CHAT_TOOLS)  # type: ignore[arg-type]
    [call] = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, orjson.loads(call.function.arguments)) == ("Bash", {"cmd": "echo hi"})  # type: ignore[union-attr]
    turns = [*ask, first.choices[0].message.model_dump(exclude_none=True),
             {"role": "tool", "tool_call_id": call.id, "content": "hi"}]
    stream = await sdk.chat.completions.create(model="m", messages=turns, tools=CHAT_TOOLS, stream=True)  # type: ignore[arg-type]
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text.split() == ["hi"] * 16
    # Without the directive, tools alone change nothing.
    plain = await openai.AsyncOpenAI(base_url=agent_fake.url, api_key="x").chat.completions.create(
        model="m", messages=ask, tools=CHAT_TOOLS, extra_body={"fake": {"agent": False}})  # type: ignore[arg-type]
    assert plain.choices[0].finish_reason == "stop"
    await sdk.close()


async def test_chat_json_output_whatever_the_directive() -> None:
    async with await start_server() as fake:
        sdk = openai.AsyncOpenAI(base_url=fake.url, api_key="x", max_retries=0)
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        reply = await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                                  response_format={"type": "json_schema", "json_schema": {
                                                      "name": "n", "schema": schema}})
        assert orjson.loads(reply.choices[0].message.content or "") == {"n": 1}
        stream = await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                                   response_format={"type": "json_object"}, stream=True)
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
        assert orjson.loads(text) == {"answer": "fake"}
        await sdk.close()


ANTHROPIC_TOOLS: list[Any] = [{"name": "Agent", "input_schema": {"type": "object"}},
                              {"name": "Bash", "input_schema": SHELL_SCHEMA}]


async def test_anthropic_agent_tool_use_round_trip_and_count_tokens() -> None:
    async with await start_fake("anthropic", behaviour=Behaviour(agent=True)) as fake:
        sdk = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{fake.port}", api_key="k", max_retries=0)
        ask: list[Any] = [{"role": "user", "content": "Use Bash to run `echo hi`"}]
        first = await sdk.messages.create(model="m", max_tokens=50, messages=ask, tools=ANTHROPIC_TOOLS)
        [tool_use] = [block for block in first.content if block.type == "tool_use"]
        assert first.stop_reason == "tool_use" and (tool_use.name, tool_use.input) == ("Bash", {"cmd": "echo hi"})
        turns = [*ask, {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "hi"}]}]
        async with sdk.messages.stream(model="m", max_tokens=50, messages=turns, tools=ANTHROPIC_TOOLS) as stream:
            final = await stream.get_final_message()
        assert final.stop_reason == "end_turn" and final.content[0].text.split()[:2] == ["hi", "hi"]  # type: ignore[union-attr]
        count = await sdk.messages.count_tokens(model="m", system="be brief", messages=turns, tools=ANTHROPIC_TOOLS)
        # The words of the system prompt and of every message, as a reply's usage counts them.
        assert count.input_tokens == 2 + 6 + 2 + 1  # "be brief", the ask, "Calling Bash.", "hi"
        with pytest.raises(anthropic.BadRequestError):
            await sdk.messages.count_tokens(model="m", messages=ask, extra_body={"max_tokens": 5})
        await sdk.close()
