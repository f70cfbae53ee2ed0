"""The official openai SDK's `responses` against `/v1/responses` through a real gateway process,
served three ways: an OpenAI-compatible backend translated to Chat Completions ("gpt"), the same
fake's native Responses API relayed ("native"), and the Anthropic adapter ("claude")."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.procs import MASTER_KEY, Gateway

BACKENDS = ["gpt", "native", "claude"]
PROMPT = "alpha beta gamma"
TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "description": "Weather by city", "strict": True,
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                    "required": ["city"], "additionalProperties": False}}]
TOOL_CALL = {"fake": {"tool_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}}


class Weather(BaseModel):
    city: str
    degrees: int


def words(text: str) -> list[str]:
    return text.split()


@pytest.mark.parametrize("model", BACKENDS)
def test_create(responses_sdk: openai.OpenAI, model: str) -> None:
    response = responses_sdk.responses.create(model=model, instructions="be brief", input=PROMPT,
                                              max_output_tokens=100)
    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_")
    assert set(words(response.output_text)) == {"alpha", "beta", "gamma"}
    assert [item.type for item in response.output] == ["message"]
    assert response.usage is not None and response.usage.output_tokens == len(words(response.output_text))
    assert response.usage.input_tokens > 0


@pytest.mark.parametrize("model", BACKENDS)
def test_stream(responses_sdk: openai.OpenAI, model: str) -> None:
    with responses_sdk.responses.stream(model=model, input=PROMPT, max_output_tokens=100) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert {"response.output_item.added", "response.content_part.added", "response.output_text.delta",
            "response.output_text.done", "response.content_part.done", "response.output_item.done"} <= set(kinds)
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == final.output_text and set(words(text)) == {"alpha", "beta", "gamma"}
    assert final.usage is not None and final.usage.output_tokens == len(words(text))


@pytest.mark.parametrize("model", BACKENDS)
@pytest.mark.parametrize("streamed", [False, True])
def test_function_tool_round_trip(responses_sdk: openai.OpenAI, model: str, streamed: bool) -> None:
    if streamed:
        with responses_sdk.responses.stream(model=model, input=PROMPT, tools=TOOLS, extra_body=TOOL_CALL) as stream:
            arguments = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
            first = stream.get_final_response()
        assert arguments == '{"city": "Paris"}'
    else:
        first = responses_sdk.responses.create(model=model, input=PROMPT, tools=TOOLS, extra_body=TOOL_CALL)
    [call] = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert call.call_id
    # The next turn resends everything, as the Agents SDK does.
    turns: list[Any] = [{"role": "user", "content": PROMPT}, call.model_dump(exclude_none=True),
                        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny today"}]
    second = responses_sdk.responses.create(model=model, input=turns, tools=TOOLS)
    assert second.status == "completed"
    assert "sunny" in second.output_text


@pytest.mark.parametrize("model", BACKENDS)
def test_structured_output(responses_sdk: openai.OpenAI, model: str) -> None:
    response = responses_sdk.responses.parse(model=model, input="the weather in Oslo", text_format=Weather)
    parsed = response.output_parsed
    assert isinstance(parsed, Weather)
    assert Weather.model_validate_json(response.output_text) == parsed


@pytest.mark.parametrize("model", BACKENDS)
@pytest.mark.parametrize("streamed", [False, True])
def test_json_mode(responses_sdk: openai.OpenAI, model: str, streamed: bool) -> None:
    # Anthropic has no schema-less JSON mode: a forced tool whose input is any object stands in for it.
    text_format: Any = {"format": {"type": "json_object"}}
    if streamed:
        with responses_sdk.responses.stream(model=model, input="reply in JSON: alpha beta", text=text_format) as stream:
            deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
            response = stream.get_final_response()
        assert deltas == response.output_text
    else:
        response = responses_sdk.responses.create(model=model, input="reply in JSON: alpha beta", text=text_format)
    assert response.status == "completed" and [item.type for item in response.output] == ["message"]
    value = json.loads(response.output_text)
    assert isinstance(value, dict) and value


@pytest.mark.parametrize("streamed", [False, True])
def test_json_mode_on_chat_completions_with_anthropic(responses_sdk: openai.OpenAI, streamed: bool) -> None:
    messages: Any = [{"role": "user", "content": "reply in JSON: alpha beta"}]
    if streamed:
        chunks = list(responses_sdk.chat.completions.create(model="claude", messages=messages, stream=True,
                                                            response_format={"type": "json_object"}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        completion = responses_sdk.chat.completions.create(model="claude", messages=messages,
                                                           response_format={"type": "json_object"})
        message = completion.choices[0].message
        assert message.tool_calls is None
        text, finish = message.content or "", [completion.choices[0].finish_reason]
    assert finish == ["stop"]
    value = json.loads(text)  # the Anthropic fake echoes the turn's words as the forced tool's `answer`
    assert list(value) == ["answer"] and set(words(value["answer"])) == set(words("reply in JSON: alpha beta"))
    # With tools of its own, the forced tool cannot be used: a clear 400, not a surprise.
    with pytest.raises(openai.BadRequestError) as caught:
        responses_sdk.chat.completions.create(model="claude", messages=messages, stream=streamed,
                                              response_format={"type": "json_object"},
                                              tools=[{"type": "function", "function": {"name": "f"}}])
    assert caught.value.body["param"] == "response_format"  # type: ignore[index]


def test_previous_response_id_across_deployments(responses_sdk: openai.OpenAI) -> None:
    first = responses_sdk.responses.create(model="gpt", input="alpha beta")
    # Each backend echoes the last user message; the earlier turns count as input.
    second = responses_sdk.responses.create(model="claude", input="gamma delta", previous_response_id=first.id)
    third = responses_sdk.responses.create(model="native", input="epsilon", previous_response_id=second.id)
    assert second.previous_response_id == first.id and third.previous_response_id == second.id
    assert set(words(third.output_text)) == {"epsilon"}
    assert second.usage is not None and third.usage is not None and first.usage is not None
    assert third.usage.input_tokens > second.usage.input_tokens > first.usage.input_tokens
    items = responses_sdk.responses.input_items.list(third.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "epsilon"  # type: ignore[union-attr]


@pytest.mark.parametrize("model", BACKENDS)
def test_streamed_turn_is_stored_before_it_ends(responses_sdk: openai.OpenAI, model: str) -> None:
    with responses_sdk.responses.stream(model=model, input=PROMPT) as stream:
        final = stream.get_final_response()
    # The very next request names it: it was stored before response.completed went out.
    follow = responses_sdk.responses.create(model=model, input="omega", previous_response_id=final.id)
    assert follow.output_text.split() and set(words(follow.output_text)) == {"omega"}


@pytest.mark.parametrize("model", BACKENDS)
def test_retrieve_and_delete(responses_sdk: openai.OpenAI, model: str) -> None:
    created = responses_sdk.responses.create(model=model, input=PROMPT, metadata={"case": "retrieve"})
    got = responses_sdk.responses.retrieve(created.id)
    assert (got.id, got.output_text, got.metadata) == (created.id, created.output_text, {"case": "retrieve"})
    responses_sdk.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        responses_sdk.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        responses_sdk.responses.delete(created.id)


def test_store_false_is_not_kept(responses_sdk: openai.OpenAI) -> None:
    created = responses_sdk.responses.create(model="gpt", input=PROMPT, store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        responses_sdk.responses.retrieve(created.id)


def test_unknown_previous_response_id(responses_sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        responses_sdk.responses.create(model="gpt", input=PROMPT, previous_response_id="resp_nope")
    assert caught.value.body["code"] == "previous_response_not_found"  # type: ignore[index]
    assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]


@pytest.mark.parametrize(("body", "param"), [
    ({"input": [{"type": "mystery_item"}]}, "input[0].type"),
    ({"input": 42}, "input"),
    ({"input": PROMPT, "tools": "nope"}, "tools"),
    ({"input": PROMPT, "max_output_tokens": "many"}, "max_output_tokens"),
    ({"input": [{"type": "message", "role": "wizard", "content": "hi"}]}, "input[0].role"),
    ({}, "input"),
    ({"input": [{"role": ["user"], "content": "hi"}]}, "input[0].role"),
    ({"input": PROMPT, "reasoning": {"effort": ["high"]}}, "reasoning.effort"),
    ({"input": PROMPT, "tools": [{"type": "namespace"}]}, "tools[0]"),
    ({"input": PROMPT, "previous_response_id": 7}, "previous_response_id"),
])
def test_bad_input_is_a_clear_400(responses_gateway: Gateway, body: dict[str, Any], param: str) -> None:
    response = httpx.post(f"{responses_gateway.url}/responses", json={"model": "gpt", **body},
                          headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def test_built_in_tool_refused_on_a_translated_backend(responses_sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        responses_sdk.responses.create(model="gpt", input=PROMPT, tools=[{"type": "web_search"}])
    assert "web_search" in caught.value.message
    assert caught.value.body["param"] == "tools[0].type"  # type: ignore[index]


def test_not_json_is_a_400(responses_gateway: Gateway) -> None:
    response = httpx.post(f"{responses_gateway.url}/responses", content=b"{nope",
                          headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("streamed", [False, True])
def test_falls_back_before_the_first_byte(responses_sdk: openai.OpenAI, streamed: bool) -> None:
    # "flaky" is a native deployment that is down; its fallback group is translated to chat.
    if streamed:
        with responses_sdk.responses.with_streaming_response.create(model="flaky", input=PROMPT,
                                                                    stream=True) as raw:
            assert raw.headers["x-gateway-fallback"] == "true"
            text = "".join(json.loads(line[6:]).get("delta", "") for line in raw.iter_lines()
                           if line.startswith("data: ") and '"response.output_text.delta"' in line)
    else:
        raw_response = responses_sdk.responses.with_raw_response.create(model="flaky", input=PROMPT)
        assert raw_response.headers["x-gateway-fallback"] == "true"
        text = raw_response.parse().output_text
    assert set(words(text)) == {"alpha", "beta", "gamma"}


@pytest.mark.parametrize("model", ["gpt", "native"])
def test_a_stream_cut_mid_way_ends_failed(responses_sdk: openai.OpenAI, model: str) -> None:
    with responses_sdk.responses.with_streaming_response.create(
            model=model, input=PROMPT, stream=True, extra_body={"fake": {"drop_after": 3}}) as raw:
        kinds = [json.loads(line[6:])["type"] for line in raw.iter_lines() if line.startswith("data: ")]
    assert kinds[0] == "response.created" and "response.completed" not in kinds
    # Translated, the gateway ends it with the documented failure events; native, with the error.
    assert kinds[-2:] == ["error", "response.failed"] if model == "gpt" else kinds[-1] == "error"


def _captured(name: str) -> dict[str, Any]:
    from tests.dialects.responses.helpers import captured

    return captured(name)["body"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("fixture", ["codex_exec_turn1.json", "codex_exec_turn2.json",
                                     "agents_sdk_stream_turn1.json", "agents_sdk_turn2.json"])
@pytest.mark.parametrize("model", BACKENDS)
def test_what_the_clients_really_send(responses_gateway: Gateway, fixture: str, model: str) -> None:
    body = {**_captured(fixture), "model": model}
    if model != "native":
        # Codex's web_search runs only inside OpenAI's service: refused by name, then sent without it.
        builtin = [t for t in body.get("tools", []) if t.get("type") == "web_search"]
        if builtin:
            refused = httpx.post(f"{responses_gateway.url}/responses", json=body,
                                 headers={"Authorization": f"Bearer {MASTER_KEY}"})
            assert refused.status_code == 400 and "web_search" in refused.json()["error"]["message"]
            body["tools"] = [t for t in body["tools"] if t.get("type") != "web_search"]
    with httpx.stream("POST", f"{responses_gateway.url}/responses", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {MASTER_KEY}"}) as response:
        assert response.status_code == 200, response.read()
        payload = response.read()
    if body.get("stream"):
        kinds = [json.loads(line[6:])["type"] for line in payload.decode().splitlines() if line.startswith("data: ")]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    else:
        assert json.loads(payload)["status"] == "completed"


ITEM = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning", "web_search_call", 5]),
    "role": st.sampled_from(["user", "assistant", "developer", "system", "tool", ["user"]]),
    "content": st.one_of(st.text(max_size=20), st.lists(st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(["input_text", "output_text", "input_image", "input_file", "refusal", 3]),
        "text": st.one_of(st.text(max_size=10), st.integers()), "image_url": st.text(max_size=10)}), max_size=3)),
    "call_id": st.one_of(st.text(max_size=5), st.integers()), "name": st.text(max_size=5),
    "arguments": st.one_of(st.text(max_size=10), st.none()), "output": st.one_of(st.text(max_size=10), st.integers()),
})
HOSTILE = st.fixed_dictionaries({"model": st.sampled_from(BACKENDS)}, optional={
    "input": st.one_of(st.text(max_size=20), st.lists(ITEM, max_size=4), st.integers(), st.none()),
    "tools": st.lists(st.fixed_dictionaries({"type": st.sampled_from(["function", "namespace", "file_search", 1])},
                                            optional={"name": st.text(max_size=5), "parameters": st.integers(),
                                                      "tools": st.lists(st.just({"type": "function"}), max_size=2)}),
                      max_size=2),
    "tool_choice": st.one_of(st.text(max_size=8), st.fixed_dictionaries({"type": st.text(max_size=8)})),
    "text": st.one_of(st.text(max_size=5), st.fixed_dictionaries({"format": st.one_of(
        st.text(max_size=5), st.fixed_dictionaries({"type": st.sampled_from(["json_schema", "json_object", "x"])}))})),
    "reasoning": st.fixed_dictionaries({"effort": st.one_of(st.text(max_size=6), st.integers())}),
    "max_output_tokens": st.one_of(st.integers(min_value=-5, max_value=50), st.text(max_size=3)),
    "previous_response_id": st.one_of(st.text(max_size=12), st.integers()),
    "stream": st.one_of(st.booleans(), st.text(max_size=3)),
    "store": st.one_of(st.booleans(), st.integers()),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(body=HOSTILE)
def test_hostile_bodies_get_a_4xx_in_the_error_shape_never_a_500(responses_gateway: Gateway,
                                                                 body: dict[str, Any]) -> None:
    response = httpx.post(f"{responses_gateway.url}/responses", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["message"] and error["type"] == "invalid_request_error"
