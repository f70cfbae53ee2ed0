"""The official openai SDK drives every provider adapter through a real gateway to that provider's fake.

One suite for all adapters: whatever the provider, a client sees OpenAI's answers, streams,
tool calls, usage and error classes.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.procs import MASTER_KEY, Gateway
from tests.providers.conftest import KEYS, MODELS
from tests.providers.helpers import reassemble
from tests.providers.procs import ProviderFake

CHAT_MODELS = list(MODELS)
MESSAGES: list[Any] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "alpha beta gamma"}]
ECHO = " ".join(["alpha", "beta", "gamma"][i % 3] for i in range(16))
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather by city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}]
TOOL_CALL = {"tool_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
AUTH_HEADERS = {"anthropic": "x-api-key", "azure": "api-key", "gemini": "x-goog-api-key", "vllm": "authorization"}
PATHS = {
    "anthropic": "/v1/messages",
    "azure": "/openai/deployments/gpt-4o-deployment/chat/completions",
    "gemini": "/v1beta/models/gemini-3-pro:generateContent",
    "vllm": "/v1/chat/completions",
}


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat(sdk: openai.OpenAI, model: str) -> None:
    completion = sdk.chat.completions.create(model=model, messages=MESSAGES)
    assert completion.choices[0].message.content == ECHO
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 16)


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_each_provider_gets_its_path_and_auth_header(sdk: openai.OpenAI, provider_fakes: dict[str, ProviderFake],
                                                     model: str) -> None:
    provider = MODELS[model][0]
    sdk.chat.completions.create(model=model, messages=MESSAGES, extra_headers={"x-request-id": f"auth-{model}"})
    [seen] = provider_fakes[provider].requests(f"auth-{model}")
    assert seen["path"] == PATHS[provider]
    expected = KEYS[provider] if provider != "vllm" else f"Bearer {KEYS[provider]}"
    assert seen["headers"][AUTH_HEADERS[provider]] == expected
    other_auth_headers = {"authorization", "x-api-key", "api-key", "x-goog-api-key"} - {AUTH_HEADERS[provider]}
    assert not other_auth_headers & set(seen["headers"])


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_stream_without_and_with_usage(sdk: openai.OpenAI, model: str) -> None:
    chunks = list(sdk.chat.completions.create(model=model, messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ECHO
    assert all(c.choices for c in chunks), "no usage-only chunk for a client that did not ask"
    assert chunks[-1].choices[0].finish_reason == "stop"
    chunks = list(sdk.chat.completions.create(model=model, messages=MESSAGES, stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 16)


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_tool_calls_then_the_tool_result_turn(sdk: openai.OpenAI, model: str) -> None:
    completion = sdk.chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS,
                                             extra_body={"fake": TOOL_CALL})
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == {"city": "Paris"}
    # The answer goes back as the next turn: each fake checks the pairing as its provider does.
    turns: list[Any] = [
        *MESSAGES,
        {"role": "assistant", "content": choice.message.content, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny and warm"},
    ]
    follow_up = sdk.chat.completions.create(model=model, tools=TOOLS, messages=turns)
    assert follow_up.choices[0].finish_reason == "stop"
    assert "sunny" in (follow_up.choices[0].message.content or "")


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_streamed_tool_calls(sdk: openai.OpenAI, model: str) -> None:
    stream = sdk.chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS, stream=True,
                                         stream_options={"include_usage": True}, extra_body={"fake": TOOL_CALL})
    rebuilt = reassemble([chunk.model_dump() for chunk in stream])
    [call] = rebuilt["calls"]
    assert call["name"] == "get_weather" and call["id"]
    assert orjson.loads(call["arguments"]) == {"city": "Paris"}
    assert rebuilt["finish"] == "tool_calls"
    assert rebuilt["usage"]["prompt_tokens"] == 5


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_rate_limits_stay_429_with_retry_after(sdk: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model=model, messages=MESSAGES,
                                    extra_body={"fake": {"status": 429, "retry_after": 3}})
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] in ("1", "3")  # azure's own retry-after-ms wins there


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_context_length_errors_are_400_context_length_exceeded(sdk: openai.OpenAI, model: str) -> None:
    long_prompt: list[Any] = [{"role": "user", "content": "word " * 5000}]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=model, messages=long_prompt)
    assert caught.value.code == "context_length_exceeded"


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_upstream_failures_are_5xx(sdk: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model=model, messages=MESSAGES, extra_body={"fake": {"status": 500}})
    assert caught.value.status_code == 502


def test_anthropic_overloaded_is_a_retryable_503(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="claude", messages=MESSAGES, extra_body={"fake": {"status": 529}})
    assert caught.value.status_code == 503
    assert caught.value.code == "overloaded"
    assert caught.value.response.headers["x-should-retry"] == "true"


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_a_failure_mid_stream_arrives_in_band(sdk: openai.OpenAI, model: str) -> None:
    stream = sdk.chat.completions.create(model=model, messages=MESSAGES, stream=True,
                                         extra_body={"fake": {"error_after": 2}})
    seen = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            seen.append(chunk)
    assert "".join(c.choices[0].delta.content or "" for c in seen if c.choices).startswith("alpha beta")


def test_anthropic_max_tokens_from_the_deployment(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model="claude-default-max", messages=MESSAGES)
    assert completion.choices[0].message.content == "alpha beta gamma"
    assert completion.choices[0].finish_reason == "length"


@pytest.mark.parametrize("model", ["azure-gpt", "gemini-embedding", "vllm"])
def test_embeddings(sdk: openai.OpenAI, model: str) -> None:
    # The SDK asks for base64 by default and decodes it; floats must come out either way.
    encoded = sdk.embeddings.create(model=model, input=["one", "two words"], dimensions=4)
    plain = sdk.embeddings.create(model=model, input=["one", "two words"], dimensions=4, encoding_format="float")
    assert [d.embedding for d in encoded.data] == [d.embedding for d in plain.data]
    assert [len(d.embedding) for d in plain.data] == [4, 4]
    single = sdk.embeddings.create(model=model, input="one", dimensions=4, encoding_format="float")
    assert single.data[0].embedding == plain.data[0].embedding
    assert plain.usage.prompt_tokens > 0


@pytest.mark.parametrize(("model", "call"), [
    ("claude", lambda sdk, m: sdk.embeddings.create(model=m, input="x")),
    ("claude", lambda sdk, m: sdk.completions.create(model=m, prompt="x")),
    ("gemini", lambda sdk, m: sdk.completions.create(model=m, prompt="x")),
])
def test_endpoints_a_provider_lacks(sdk: openai.OpenAI, model: str, call: Any) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        call(sdk, model)
    assert caught.value.code == "unsupported_endpoint"


@pytest.mark.parametrize("model", ["azure-gpt", "vllm"])
def test_legacy_completions_where_the_provider_has_them(sdk: openai.OpenAI, model: str) -> None:
    completion = sdk.completions.create(model=model, prompt="alpha beta", max_tokens=16)
    assert completion.choices[0].text.startswith("alpha beta alpha")


def test_unsupported_options_are_a_400_naming_the_field(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="claude", messages=MESSAGES, n=2)
    assert caught.value.param == "n"


def test_upstream_keys_never_reach_clients_or_logs(provider_fakes: dict[str, ProviderFake],
                                                   tmp_path: Any, capfd: pytest.CaptureFixture[str]) -> None:
    wrong = {name: f"sk-wrong-{name}-key-abcdefghij" for name in provider_fakes}
    models = [{"name": name, "deployments": [{"provider": name, "base_url": fake.url, "model": "m",
                                              "api_key_env": f"WRONG_{name.upper()}"}]}
              for name, fake in provider_fakes.items()]
    gw = Gateway(tmp_path, models, settings={"log_level": "debug"},
                 env={f"WRONG_{name.upper()}": key for name, key in wrong.items()})
    try:
        sdk = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
        bodies = []
        for name in provider_fakes:
            for stream in (False, True):
                with pytest.raises(openai.InternalServerError) as caught:
                    sdk.chat.completions.create(model=name, messages=MESSAGES, stream=stream)
                assert caught.value.code == "upstream_auth_failed"
                bodies.append(caught.value.response.text)
    finally:
        gw.close()
    output = capfd.readouterr()
    for key in wrong.values():
        for text in (*bodies, output.out, output.err):
            assert key not in text
    assert all("upstream_auth_failed" in body for body in bodies)


def test_base64_embeddings_are_float32(providers_gateway: Gateway) -> None:
    response = httpx.post(providers_gateway.url + "/embeddings", headers={"authorization": f"Bearer {MASTER_KEY}"},
                          json={"model": "gemini-embedding", "input": "one", "encoding_format": "base64",
                                "dimensions": 3})
    raw = base64.b64decode(response.json()["data"][0]["embedding"])
    assert len(raw) == 3 * 4
