"""Responses requests -> neutral chat requests: the captured clients, every field, every refusal."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.errors import InvalidRequest
from gateway.dialects.responses.request import parse, read
from tests.dialects.responses.helpers import captured, request


def test_codex_first_turn() -> None:
    body = captured("codex_exec_turn1.json")["body"]
    body["tools"] = [t for t in body["tools"] if t["type"] != "web_search"]  # what web_search = "disabled" sends
    read_request = read(parse(orjson.dumps(body)))
    chat = read_request.chat
    assert [m["role"] for m in chat["messages"]] == ["system", "system", "user", "user"]
    assert chat["messages"][0]["content"].startswith("You are a coding agent running in the Codex CLI")
    assert chat["messages"][-1] == {"role": "user",
                                    "content": "Run the shell command 'echo hello-from-tool' and tell me its output."}
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["tool_choice"] == "auto" and chat["parallel_tool_calls"] is True
    names = [t["function"]["name"] for t in chat["tools"]]
    assert names[0] == "exec_command" and "multi_agent_v1__close_agent" in names
    assert read_request.namespaced["multi_agent_v1__close_agent"] == ("multi_agent_v1", "close_agent")
    # Codex's own bookkeeping is not sent to a chat backend.
    assert not {"client_metadata", "store", "include", "reasoning", "input", "instructions"} & set(chat)
    assert chat["prompt_cache_key"] == body["prompt_cache_key"]
    assert read_request.store is False and read_request.stream is True


def test_codex_second_turn_carries_the_tool_round_trip() -> None:
    body = captured("codex_exec_turn2.json")["body"]
    body["tools"] = [t for t in body["tools"] if t["type"] != "web_search"]
    messages = read(parse(orjson.dumps(body))).chat["messages"]
    assert messages[-2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "exec_command", "arguments": '{"cmd": "echo hello-from-tool"}'}}]}
    assert messages[-1]["role"] == "tool" and messages[-1]["tool_call_id"] == "call_1"
    assert "hello-from-tool" in messages[-1]["content"]


def test_codex_web_search_is_refused_naming_the_tool() -> None:
    body = captured("codex_exec_turn1.json")["body"]
    with pytest.raises(InvalidRequest) as raised:
        read(parse(orjson.dumps(body)))
    index = [t["type"] for t in body["tools"]].index("web_search")
    assert raised.value.param == f"tools[{index}].type"
    assert "'web_search'" in raised.value.message and 'web_search = "disabled"' in raised.value.message


@pytest.mark.parametrize("name", ["agents_sdk_stream_turn1.json", "agents_sdk_turn2.json"])
def test_agents_sdk_requests(name: str) -> None:
    body = captured(name)["body"]
    chat = read(parse(orjson.dumps(body))).chat
    assert chat["messages"][0] == {"role": "system", "content": "You are helpful."}
    assert chat["messages"][1] == {"role": "user", "content": "What's the weather in Oslo?"}
    assert chat["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "parameters": body["tools"][0]["parameters"],
        "description": "Get the weather for a city.", "strict": True}}]
    assert chat["reasoning_effort"] == "none" and chat["verbosity"] == "low"
    if name == "agents_sdk_turn2.json":
        assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool"]
        assert chat["messages"][3] == {"role": "tool", "tool_call_id": "call_1",
                                       "content": "The weather in Oslo is sunny."}


def test_every_field_maps() -> None:
    read_request = request(
        instructions="Be terse.",
        input=[
            {"role": "developer", "content": "Use metric."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
                {"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
                {"type": "input_file", "file_id": "file-123"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed", "content": [
                {"type": "output_text", "text": "Checking.", "annotations": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "look", "arguments": '{"q": 1}'},
            {"type": "function_call", "call_id": "c2", "name": "close_agent", "namespace": "agents",
             "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "found"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "a"},
                                                                        {"type": "input_text", "text": "b"}]},
        ],
        tools=[{"type": "function", "name": "look", "parameters": {"type": "object"}, "strict": False},
               {"type": "namespace", "name": "agents", "description": "Agents.",
                "tools": [{"type": "function", "name": "close_agent", "description": "Close."}]}],
        tool_choice={"type": "function", "name": "close_agent", "namespace": "agents"},
        parallel_tool_calls=False, max_output_tokens=300, temperature=0.2, top_p=0.9,
        text={"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": True}},
        reasoning={"effort": "high", "summary": "auto"}, metadata={"a": "b"}, store=False,
        user="u-1", safety_identifier="s-1", truncation="auto", include=["reasoning.encrypted_content"],
        stream=True, fake={"tokens": 2},
    )
    assert read_request.chat == {
        "model": "m", "fake": {"tokens": 2},
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "system", "content": "Use metric."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
                {"type": "file", "file": {"file_id": "file-123"}}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "look", "arguments": '{"q": 1}'}},
                {"id": "c2", "type": "function", "function": {"name": "agents__close_agent", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "found"},
            {"role": "tool", "tool_call_id": "c2", "content": "ab"},
        ],
        "stream": True, "stream_options": {"include_usage": True},
        "max_completion_tokens": 300, "temperature": 0.2, "top_p": 0.9, "safety_identifier": "s-1", "user": "u-1",
        "tools": [
            {"type": "function", "function": {"name": "look", "parameters": {"type": "object"}, "strict": False}},
            {"type": "function", "function": {"name": "agents__close_agent", "description": "Close.",
                                              "parameters": {"type": "object", "properties": {}}}}],
        "parallel_tool_calls": False,
        "tool_choice": {"type": "function", "function": {"name": "agents__close_agent"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"},
                                                                   "strict": True}},
        "reasoning_effort": "high",
    }
    assert read_request.echo["metadata"] == {"a": "b"} and read_request.echo["truncation"] == "auto"
    assert read_request.echo["reasoning"] == {"effort": "high", "summary": "auto"}
    assert read_request.store is False and read_request.previous_response_id is None


def test_a_string_input_and_the_defaults() -> None:
    read_request = request()
    assert read_request.chat == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert read_request.input_items == [{"type": "message", "role": "user",
                                         "content": [{"type": "input_text", "text": "hi"}]}]
    assert read_request.store is True and read_request.stream is False
    assert read_request.echo["tool_choice"] == "auto" and read_request.echo["text"] == {
        "format": {"type": "text"}, "verbosity": "medium"}


def test_json_object_and_allowed_tools() -> None:
    chat = request(text={"format": {"type": "json_object"}}, tools=[
        {"type": "function", "name": "a"}, {"type": "function", "name": "b"}],
        tool_choice={"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "b"}]}).chat
    assert chat["response_format"] == {"type": "json_object"}
    assert [t["function"]["name"] for t in chat["tools"]] == ["b"] and chat["tool_choice"] == "required"


def test_history_comes_first_and_instructions_are_not_carried_over() -> None:
    history = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "earlier"}]},
               {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                "content": [{"type": "output_text", "text": "answer", "annotations": []}]}]
    body = parse(orjson.dumps({"model": "m", "input": "now", "instructions": "New rules.",
                               "previous_response_id": "resp_1"}))
    read_request = read(body, history)
    assert read_request.chat["messages"] == [
        {"role": "system", "content": "New rules."}, {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "answer"}, {"role": "user", "content": "now"}]
    assert read_request.previous_response_id == "resp_1"
    assert read_request.input_items == [{"type": "message", "role": "user",
                                         "content": [{"type": "input_text", "text": "now"}]}]


BAD: list[tuple[Any, str | None]] = [
    (b"", None),
    (b"[1]", None),
    (b"{", None),
    ({"input": "x"}, "model"),
    ({"model": "m"}, "input"),
    ({"model": "m", "input": 5}, "input"),
    ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
    ({"model": "m", "input": "x", "max_output_tokens": True}, "max_output_tokens"),
    ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
    ({"model": "m", "input": "x", "background": True}, "background"),
    ({"model": "m", "input": "x", "conversation": "conv_1"}, "conversation"),
    ({"model": "m", "input": "x", "previous_response_id": 7}, "previous_response_id"),
    ({"model": "m", "input": []}, "input"),
    ({"model": "m", "input": [7]}, "input[0]"),
    ({"model": "m", "input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0].type"),
    ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0].type"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0].image_url"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://x"}]}]},
     "input[0].content[0].file_data"),
    ({"model": "m", "input": [{"role": "system", "content": [{"type": "input_image", "image_url": "u"}]}]},
     "input[0].content[0]"),
    ({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
    ({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
     "input[0].arguments"),
    ({"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": 3}]}, "input[0].output"),
    ({"model": "m", "input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, "tools[0].type"),
    ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "function", "name": "f"}]},
     "tools"),
    ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": "m", "input": "x", "tool_choice": {"type": "web_search"}}, "tool_choice"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "json_schema"}}}, "text.format"),
    ({"model": "m", "input": "x", "reasoning": {"effort": "maximal"}}, "reasoning.effort"),
]


@pytest.mark.parametrize(("body", "param"), BAD)
def test_bad_requests_are_400s_naming_the_field(body: Any, param: str | None) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(InvalidRequest) as raised:
        read(parse(raw))
    assert raised.value.status == 400 and raised.value.param == param
    assert raised.value.body()["error"]["type"] == "invalid_request_error"


SCALARS = st.none() | st.booleans() | st.integers(-2, 3) | st.sampled_from(
    ["", "x", "user", "assistant", "system", "developer", "message", "function_call", "function_call_output",
     "reasoning", "input_text", "input_image", "input_file", "output_text", "refusal", "function", "namespace",
     "json_schema", "json_object", "auto", "required", "allowed_tools", "web_search"])
KEYS = st.sampled_from(["type", "role", "content", "text", "image_url", "file_data", "file_id", "call_id", "name",
                        "arguments", "output", "namespace", "tools", "parameters", "format", "schema", "mode",
                        "effort", "detail", "refusal"])
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                    max_leaves=25)
BODIES = st.fixed_dictionaries({"model": st.just("m"), "input": JSON}, optional={
    "tools": JSON, "tool_choice": JSON, "text": JSON, "reasoning": JSON, "instructions": JSON,
    "max_output_tokens": JSON, "stream": JSON, "store": JSON, "previous_response_id": JSON})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BODIES)
def test_any_json_is_read_or_refused_with_a_400(body: dict[str, Any]) -> None:
    try:
        read(parse(orjson.dumps(body)))
    except InvalidRequest as error:
        assert error.status == 400
