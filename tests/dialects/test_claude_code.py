"""Claude Code's requests, as captured (docs/clients.md), through the `/v1/messages` reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.core.errors import InvalidRequest
from gateway.dialects.anthropic.request import to_openai
from gateway.providers.anthropic.request import to_anthropic

FIXTURES = Path(__file__).parent / "fixtures"


def captured(name: str) -> dict[str, Any]:
    return orjson.loads((FIXTURES / name).read_bytes())


def test_the_capture_has_a_system_entry_inside_messages() -> None:
    body = captured("claude_code_turn1.json")["body"]
    assert [m["role"] for m in body["messages"]] == ["user", "system"]


@pytest.mark.parametrize("name", ["claude_code_turn1.json", "claude_code_turn2.json"])
def test_system_entries_are_folded_into_the_system_prompt(name: str) -> None:
    body = captured(name)["body"]
    chat = to_openai(orjson.dumps(body))
    roles = [m["role"] for m in chat["messages"]]
    assert roles[0] == "system" and "system" not in roles[1:]
    system = chat["messages"][0]["content"]
    top = [block["text"] for block in body["system"]]
    inside = body["messages"][1]["content"]
    inside_text = inside if isinstance(inside, str) else "\n\n".join(block["text"] for block in inside)
    # The top-level system first, then the entry from messages[1]: the order they came in.
    assert system == "\n\n".join([*top, inside_text])
    assert system.index("You are a Claude agent") < system.index("# Environment")
    assert chat["max_tokens"] == 32000 and chat["stream"] is True
    assert {t["function"]["name"] for t in chat["tools"]} >= {"Bash", "Read", "Write"}


def test_the_tool_round_trip_of_the_second_turn() -> None:
    chat = to_openai(orjson.dumps(captured("claude_code_turn2.json")["body"]))
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool"]
    call = chat["messages"][2]["tool_calls"][0]
    assert call["id"] == "toolu_1" and call["function"]["name"] == "Bash"
    assert orjson.loads(call["function"]["arguments"])["command"] == "echo hello-from-tool"
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "hello-from-tool"}


def test_system_entries_keep_the_meaning_of_their_place() -> None:
    # Before the first answer: part of the system prompt. After one: from there on, so in place.
    body = {"model": "m", "max_tokens": 10, "system": "Top.", "messages": [
        {"role": "system", "content": "First."},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Second."},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": [{"type": "text", "text": "Third."}, {"type": "text", "text": "Fourth."}]},
        {"role": "user", "content": "again"},
    ]}
    assert to_openai(orjson.dumps(body))["messages"] == [
        {"role": "system", "content": "Top.\n\nFirst.\n\nSecond."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "Third.\n\nFourth."},
        {"role": "user", "content": "again"},
    ]


def test_a_late_system_entry_reaches_anthropic_in_its_turn() -> None:
    """Anthropic takes a system prompt only on top: a late entry goes into the next user turn,
    after its tool results, marked as a system reminder."""
    body = {"model": "m", "max_tokens": 10, "system": "Top.", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "system", "content": "Answer in French from now on."},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"},
                                     {"type": "text", "text": "and then?"}]},
    ]}
    upstream = to_anthropic(to_openai(orjson.dumps(body)), "claude-upstream")
    assert upstream["system"] == "Top."
    assert [turn["role"] for turn in upstream["messages"]] == ["user", "assistant", "user"]
    assert upstream["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "42"},
        {"type": "text", "text": "<system-reminder>\nAnswer in French from now on.\n</system-reminder>"},
        {"type": "text", "text": "and then?"},
    ]


def test_a_late_system_entry_at_the_end_is_a_user_turn_of_its_own() -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "Be brief."},
    ]}
    upstream = to_anthropic(to_openai(orjson.dumps(body)), "claude-upstream")
    assert "system" not in upstream
    assert upstream["messages"][-1] == {
        "role": "user", "content": [{"type": "text", "text": "<system-reminder>\nBe brief.\n</system-reminder>"}]}


def test_a_system_entry_without_a_top_level_system() -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"},
                                                         {"role": "system", "content": "Be brief."}]}
    assert to_openai(orjson.dumps(body))["messages"] == [{"role": "system", "content": "Be brief."},
                                                          {"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("messages", "param"), [
    ([{"role": "system", "content": "only instructions"}], "messages"),
    ([{"role": "user", "content": "hi"}, {"role": "system", "content": 7}], "messages.1.content"),
    ([{"role": "user", "content": "hi"}, {"role": "system", "content": [{"type": "text"}]}],
     "messages.1.content.0"),
    ([{"role": "tool", "content": "x"}], "messages.0.role"),
])
def test_bad_system_entries_are_400s_naming_the_field(messages: list[Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        to_openai(orjson.dumps({"model": "m", "max_tokens": 10, "messages": messages}))
    assert raised.value.status == 400 and raised.value.param == param
