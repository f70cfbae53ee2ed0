"""`/v1/responses` on every provider adapter, through a real gateway: Azure's v1 API relayed
natively (its URL, its `api-key`), Gemini and vLLM translated to Chat Completions; unary and
streamed, with a tool call."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.providers.conftest import KEYS
from tests.providers.procs import ProviderFake

TOOLS: list[Any] = [{"type": "function", "name": "get_weather",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
TOOL_CALL = {"fake": {"tool_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}}
MODELS = ["azure-v1", "gemini", "vllm"]


def test_azure_v1_is_relayed_natively(sdk: openai.OpenAI, provider_fakes: dict[str, ProviderFake]) -> None:
    response = sdk.responses.create(model="azure-v1", input="alpha beta",
                                    extra_headers={"x-request-id": "responses-azure-v1"})
    assert set(response.output_text.split()) == {"alpha", "beta"}
    [seen] = provider_fakes["azure"].requests("responses-azure-v1")
    assert seen["path"] == "/openai/v1/responses" and seen["headers"]["api-key"] == KEYS["azure"]
    assert seen["body"]["model"] == "gpt-4o-deployment" and seen["body"]["input"][0]["role"] == "user"


@pytest.mark.parametrize("model", MODELS)
def test_create_and_stream(sdk: openai.OpenAI, model: str) -> None:
    response = sdk.responses.create(model=model, input="alpha beta gamma")
    assert response.status == "completed" and set(response.output_text.split()) == {"alpha", "beta", "gamma"}
    assert response.usage is not None and response.usage.output_tokens > 0
    with sdk.responses.stream(model=model, input="alpha beta gamma") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text and set(text.split()) == {"alpha", "beta", "gamma"}
    assert final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_tool_call(sdk: openai.OpenAI, model: str) -> None:
    with sdk.responses.stream(model=model, input="weather?", tools=TOOLS, extra_body=TOOL_CALL) as stream:
        final = stream.get_final_response()
    [call] = [item for item in final.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
