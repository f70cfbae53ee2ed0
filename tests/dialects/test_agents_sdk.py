"""The OpenAI Agents SDK through the gateway's `/v1/responses`: its default model (a Responses
model, by default name and with its default settings), a function tool, a full round trip, unary and
streamed, on each kind of backend."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.dialects.conftest import AGENTS_DEFAULT_MODEL
from tests.procs import MASTER_KEY, Gateway

agents = pytest.importorskip("agents")


@pytest.fixture
def default_client(responses_gateway: Gateway) -> Iterator[openai.AsyncOpenAI]:
    agents.set_tracing_disabled(True)  # its exporter would post to api.openai.com
    client = openai.AsyncOpenAI(base_url=responses_gateway.url, api_key=MASTER_KEY, max_retries=0)
    agents.set_default_openai_client(client, use_for_tracing=False)
    yield client


def test_default_model_is_the_one_the_gateway_serves() -> None:
    from agents.models import get_default_model

    assert get_default_model() == AGENTS_DEFAULT_MODEL


# None: the SDK's default model, by its own name (served by the translated "gpt" group).
@pytest.mark.parametrize("model", [None, "native", "claude"])
async def test_function_tool_round_trip(default_client: openai.AsyncOpenAI, model: str | None) -> None:
    asked: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"sunny in {city}"

    # The fakes act as a model driving an agent: call the tool the prompt names, then answer its result.
    # On top of the SDK's own defaults for its default model (reasoning effort "none", low verbosity).
    from agents.models.default_models import get_default_model_settings

    settings = get_default_model_settings().resolve(agents.ModelSettings(extra_body={"fake": {"agent": True}}))
    assert settings.reasoning is not None and settings.reasoning.effort == "none"
    helper = agents.Agent(name="helper", instructions="Use tools.", tools=[get_weather],
                          **({"model": model} if model else {}), model_settings=settings)
    if model is None:
        assert helper.model is None  # the SDK picks its default, a Responses model
    result = await agents.Runner.run(helper, "What is the weather in 'Oslo'?")
    streamed = agents.Runner.run_streamed(helper, "And in 'Bergen'?")
    kinds = {event.type async for event in streamed.stream_events()}
    assert asked == ["Oslo", "Bergen"]
    assert result.final_output.startswith("sunny in Oslo")
    assert streamed.final_output.startswith("sunny in Bergen")
    assert "raw_response_event" in kinds
    responses = [r for r in result.raw_responses]
    assert len(responses) == 2 and all(r.usage.output_tokens > 0 for r in responses)
