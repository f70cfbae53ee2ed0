"""The fake's native `POST /v1/responses`, driven by the official openai SDK over a real socket."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest
from pydantic import BaseModel

from gateway.fake.behaviour import Behaviour
from gateway.fake.server import FakeUpstream, start_server

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}}
ECHO_16 = " ".join((["hello", "there", "world"] * 6)[:16])


async def test_a_text_answer_with_usage(client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(model="gpt-4o-mini", input="hello there world",
                                             instructions="Be brief.", metadata={"k": "v"})
    assert response.output_text == ECHO_16
    assert response.id.startswith("resp_fake") and response.status == "completed" and response.model == "gpt-4o-mini"
    assert response.instructions == "Be brief." and response.metadata == {"k": "v"}
    assert response.usage is not None and (response.usage.input_tokens, response.usage.output_tokens) == (3, 16)
    assert response.output[0].id.startswith("msg_")


async def test_the_stream_is_the_documented_sequence(client: openai.AsyncOpenAI) -> None:
    async with client.responses.stream(model="m", input="one two", extra_body={"fake": {"tokens": 3}}) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * 3,
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert final.output_text == "one two one" and final.usage is not None and final.usage.output_tokens == 3


async def test_a_tool_call_by_directive_and_its_round_trip(client: openai.AsyncOpenAI) -> None:
    call = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    async with client.responses.stream(model="m", input="weather?", tools=[WEATHER],  # type: ignore[list-item]
                                       extra_body={"fake": {"tool_call": call}}) as stream:
        deltas = [e.delta async for e in stream if e.type == "response.function_call_arguments.delta"]
        first = await stream.get_final_response()
    [item] = first.output
    assert item.type == "function_call" and item.name == "get_weather" and "".join(deltas) == call["arguments"]
    second = await client.responses.create(model="m", previous_response_id=first.id, tools=[WEATHER],  # type: ignore[list-item]
                                           input=[{"type": "function_call_output", "call_id": item.call_id,
                                                   "output": "sunny and warm"}])
    assert second.output_text.startswith("sunny and warm sunny")
    # The earlier turn counts as input: "weather?" and the new output.
    assert second.usage is not None and second.usage.input_tokens == 4
    assert second.previous_response_id == first.id


async def test_agent_calls_the_tool_the_user_names_with_the_quoted_words() -> None:
    async with await start_server(behaviour=Behaviour(agent=True)) as fake:
        sdk = openai.AsyncOpenAI(base_url=fake.url, api_key="x", max_retries=0)
        shell = {"type": "namespace", "name": "tools", "description": "d", "tools": [
            {"type": "function", "name": "exec_command", "parameters": {
                "type": "object", "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}},
                "required": ["cmd"]}}]}
        response = await sdk.responses.create(model="m", input="Use exec_command to run 'echo hi'.",
                                              tools=[WEATHER, shell])  # type: ignore[list-item]
        [call] = response.output
        assert call.type == "function_call"
        assert (call.name, call.namespace) == ("exec_command", "tools")
        assert orjson.loads(call.arguments) == {"cmd": "echo hi"}
        answered = await sdk.responses.create(model="m", tools=[WEATHER, shell], input=[  # type: ignore[list-item]
            {"role": "user", "content": "Use exec_command to run 'echo hi'."}, call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "hi"}])
        assert answered.output[0].type == "message" and answered.output_text.startswith("hi hi")
        none = await sdk.responses.create(model="m", input="x", tools=[WEATHER], tool_choice="none")  # type: ignore[list-item]
        assert none.output[0].type == "message"
        await sdk.close()


class Answer(BaseModel):
    city: str
    degrees: int
    sunny: bool


async def test_structured_output(client: openai.AsyncOpenAI) -> None:
    parsed = await client.responses.parse(model="m", input="weather", text_format=Answer)
    assert parsed.output_parsed == Answer(city="fake", degrees=1, sunny=True)
    loose = await client.responses.create(model="m", input="x", text={"format": {"type": "json_object"}})
    assert orjson.loads(loose.output_text) == {"answer": "fake"}


async def test_max_output_tokens_makes_it_incomplete(client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(model="m", input="a b c", max_output_tokens=4)
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens" and len(response.output_text.split()) == 4


async def test_store_false_is_forgotten_and_unknown_ids_are_400(client: openai.AsyncOpenAI) -> None:
    unstored = await client.responses.create(model="m", input="x", store=False)
    for previous in (unstored.id, "resp_missing"):
        with pytest.raises(openai.BadRequestError) as raised:
            await client.responses.create(model="m", input="y", previous_response_id=previous)
        assert raised.value.body == {"message": f"Previous response with id '{previous}' not found.",  # type: ignore[comparison-overlap]
                                     "type": "invalid_request_error", "param": "previous_response_id", "code": None}


async def test_an_error_mid_stream_is_an_error_event_then_failed(fake: FakeUpstream) -> None:
    async with httpx.AsyncClient(base_url=fake.url) as http:
        response = await http.post("/responses", json={"model": "m", "input": "a b", "stream": True,
                                                       "fake": {"error_after": 2}})
    frames = [block.split("\n") for block in response.text.split("\n\n") if block]
    events: list[dict[str, Any]] = [orjson.loads(lines[1].removeprefix("data: ")) for lines in frames]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events][-4:] == ["response.output_text.delta", "response.output_text.delta", "error",
                                                "response.failed"]
    assert events[-1]["response"]["error"]["code"] == "server_error"
    assert all(lines[0] == "event: " + e["type"] for lines, e in zip(frames, events, strict=True))


@pytest.mark.parametrize(("body", "param"), [({"input": "x"}, "model"), ({"model": "m", "input": 5}, "input"),
                                             ({"model": "m", "input": []}, "input")])
async def test_bad_requests(fake: FakeUpstream, body: dict[str, Any], param: str) -> None:
    async with httpx.AsyncClient(base_url=fake.url) as http:
        response = await http.post("/responses", json=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


async def test_the_agents_sdk_finishes_a_tool_round_trip() -> None:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)  # its exporter would post to OpenAI
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"sunny in {city}"

    async with await start_server(behaviour=Behaviour(agent=True)) as fake:
        sdk = openai.AsyncOpenAI(base_url=fake.url, api_key="x", max_retries=0)
        model = OpenAIResponsesModel(model="gpt-4o-mini", openai_client=sdk)
        helper = Agent(name="helper", instructions="Use tools.", tools=[get_weather], model=model)
        result = await Runner.run(helper, "What is the weather in 'Oslo'?")
        streamed = Runner.run_streamed(helper, "And in 'Bergen'?")
        kinds = {event.type async for event in streamed.stream_events()}
        await sdk.close()
    assert asked == ["Oslo", "Bergen"]
    assert result.final_output.startswith("sunny in Oslo") and streamed.final_output.startswith("sunny in Bergen")
    assert "raw_response_event" in kinds
