"""OpenAI-compatible services by name: a deployment in two lines, each service's quirks handled.

Unit tests read the calls the presets build; the rest drives the official SDK through a real
gateway to each service's fake, which refuses what the service's documentation says it refuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from gateway.config.file import ConfigError, config_from_dict
from gateway.config.settings import Settings
from gateway.core.types import Endpoint, Usage
from gateway.providers import PROVIDERS
from gateway.providers.openai.presets import PRESETS
from tests.procs import MASTER_KEY, Gateway
from tests.providers.calls import request
from tests.providers.procs import ProviderFake

MESSAGES: list[Any] = [{"role": "user", "content": "alpha beta gamma", "name": "ann"}]
ECHO = " ".join(["alpha", "beta", "gamma"][i % 3] for i in range(16))
# preset -> (upstream model, key variable or None for a local server)
SERVICES: dict[str, tuple[str, str | None]] = {
    "groq": ("llama-3.3-70b-versatile", "GROQ_API_KEY"),
    "mistral": ("mistral-small-latest", "MISTRAL_API_KEY"),
    "deepseek": ("deepseek-reasoner", "DEEPSEEK_API_KEY"),
    "together": ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "TOGETHER_API_KEY"),
    "fireworks": ("accounts/fireworks/models/llama-v3p1-8b-instruct", "FIREWORKS_API_KEY"),
    "openrouter": ("openai/gpt-4o-mini", "OPENROUTER_API_KEY"),
    "xai": ("grok-4-0709", "XAI_API_KEY"),
    "ollama": ("llama3.2", None),
    "llamacpp": ("any", None),
}
BASE_URLS = {
    "groq": "https://api.groq.com/openai/v1", "mistral": "https://api.mistral.ai/v1",
    "deepseek": "https://api.deepseek.com/v1", "together": "https://api.together.xyz/v1",
    "fireworks": "https://api.fireworks.ai/inference/v1", "openrouter": "https://openrouter.ai/api/v1",
    "xai": "https://api.x.ai/v1", "ollama": "http://localhost:11434/v1", "llamacpp": "http://localhost:8080/v1",
}
# What a client may send that some service refuses: each preset must drop or rename its share.
AWKWARD: dict[str, Any] = {"logit_bias": {"1": 1}, "logprobs": True, "top_logprobs": 2, "seed": 7,
                           "max_completion_tokens": 64, "user": "u-1", "presence_penalty": 0.5,
                           "frequency_penalty": 0.5, "stop": ["zzz"], "reasoning_effort": "low"}


def _key(name: str) -> str:
    return f"{name}-key-0123456789"


def _two_lines(monkeypatch: pytest.MonkeyPatch, name: str) -> Any:
    _, key_env = SERVICES[name]
    if key_env:
        monkeypatch.setenv(key_env, _key(name))
    raw = {"models": [{"name": "m", "deployments": [{"provider": name, "model": SERVICES[name][0]}]}]}
    config, _ = config_from_dict(raw, PROVIDERS)
    return config.models[0].deployments[0]


def test_every_preset_is_tested() -> None:
    assert set(PRESETS) == set(SERVICES) == set(BASE_URLS)


@pytest.mark.parametrize("name", SERVICES)
def test_a_deployment_in_two_lines(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    d = _two_lines(monkeypatch, name)
    assert d.base_url == BASE_URLS[name]
    call = PROVIDERS[name](Settings()).build_call(request({"model": "m", "messages": MESSAGES}), d)
    assert call.url == BASE_URLS[name] + "/chat/completions"
    if SERVICES[name][1]:
        assert call.headers["Authorization"] == f"Bearer {_key(name)}"
    else:
        assert "Authorization" not in call.headers


@pytest.mark.parametrize("name", [n for n, (_, env) in SERVICES.items() if env])
def test_a_missing_key_stops_start_up_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    key_env = SERVICES[name][1]
    assert key_env is not None
    monkeypatch.delenv(key_env, raising=False)
    with pytest.raises(ConfigError, match=key_env):
        config_from_dict({"models": [{"name": "m", "deployments": [{"provider": name}]}]}, PROVIDERS)


def test_the_deployment_overrides_url_and_key_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_GROQ", "k-123456789")
    raw = {"models": [{"name": "m", "deployments": [
        {"provider": "groq", "base_url": "http://proxy.internal/v1/", "api_key_env": "MY_GROQ"}]}]}
    config, _ = config_from_dict(raw, PROVIDERS)
    d = config.models[0].deployments[0]
    assert (d.base_url, d.api_key_env, d.api_key.get_secret_value()) == ("http://proxy.internal/v1", "MY_GROQ",
                                                                         "k-123456789")


def test_providers_without_a_default_url_still_need_one() -> None:
    with pytest.raises(ConfigError, match=r"base_url: required for provider 'openai'"):
        config_from_dict({"models": [{"name": "m", "deployments": [{"provider": "openai"}]}]}, PROVIDERS)


def _sent(monkeypatch: pytest.MonkeyPatch, name: str, body: dict[str, Any]) -> dict[str, Any]:
    d = _two_lines(monkeypatch, name)
    call = PROVIDERS[name](Settings()).build_call(request({"model": "m", **body}), d)
    return dict(orjson.loads(call.body or b""))


def test_groq_drops_logprobs_logit_bias_and_message_names(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _sent(monkeypatch, "groq", {"messages": MESSAGES, **AWKWARD})
    assert not {"logprobs", "top_logprobs", "logit_bias"} & sent.keys()
    assert sent["messages"] == [{"role": "user", "content": "alpha beta gamma"}]
    assert sent["seed"] == 7 and sent["max_completion_tokens"] == 64


def test_mistral_renames_seed_and_max_tokens_and_never_sends_stream_options(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _sent(monkeypatch, "mistral", {"messages": MESSAGES, "stream": True, **AWKWARD})
    assert (sent["random_seed"], sent["max_tokens"]) == (7, 64)
    assert not {"seed", "max_completion_tokens", "stream_options", "user", "logit_bias", "logprobs"} & sent.keys()


def test_a_client_that_sends_both_names_keeps_the_services_own(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _sent(monkeypatch, "mistral", {"messages": MESSAGES, "max_tokens": 10, "max_completion_tokens": 64})
    assert sent["max_tokens"] == 10 and "max_completion_tokens" not in sent


def test_model_specific_refusals_apply_only_to_those_models(monkeypatch: pytest.MonkeyPatch) -> None:
    reasoner = _sent(monkeypatch, "deepseek", {"messages": MESSAGES, **AWKWARD})
    assert "logprobs" not in reasoner and reasoner["max_tokens"] == 64
    grok = _sent(monkeypatch, "xai", {"messages": MESSAGES, **AWKWARD})
    assert not {"presence_penalty", "frequency_penalty", "stop", "reasoning_effort"} & grok.keys()
    monkeypatch.setenv("XAI_API_KEY", "k-123456789")
    for model, kept in (("grok-2", {"stop", "reasoning_effort"}), ("grok-4.3", {"reasoning_effort"}),
                        ("grok-3-mini-fast", {"reasoning_effort"})):
        raw = {"models": [{"name": "m", "deployments": [{"provider": "xai", "model": model}]}]}
        d = config_from_dict(raw, PROVIDERS)[0].models[0].deployments[0]
        call = PROVIDERS["xai"](Settings()).build_call(request({"model": "m", "messages": MESSAGES, **AWKWARD}), d)
        assert kept <= orjson.loads(call.body or b"").keys(), model


def test_streams_ask_for_usage_where_the_service_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _sent(monkeypatch, "groq", {"messages": MESSAGES, "stream": True})
    assert sent["stream_options"] == {"include_usage": True}


def test_openrouter_attribution_headers_from_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "k-123456789")
    raw = {"models": [{"name": "m", "deployments": [
        {"provider": "openrouter", "options": {"app_url": "https://example.org", "app_name": "Demo"}}]}]}
    d = config_from_dict(raw, PROVIDERS)[0].models[0].deployments[0]
    call = PROVIDERS["openrouter"](Settings()).build_call(request({"model": "m", "messages": MESSAGES}), d)
    assert (call.headers["HTTP-Referer"], call.headers["X-Title"]) == ("https://example.org", "Demo")


def test_deepseek_cache_hits_count_as_cached_tokens() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105,
             "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36}
    assert Usage.from_openai(usage) == Usage(prompt_tokens=100, completion_tokens=5, cached_tokens=64)


def test_embeddings_go_to_the_services_embeddings_path(monkeypatch: pytest.MonkeyPatch) -> None:
    d = _two_lines(monkeypatch, "mistral")
    call = PROVIDERS["mistral"](Settings()).build_call(
        request({"model": "m", "input": "x"}, Endpoint.EMBEDDINGS), d)
    assert call.url == "https://api.mistral.ai/v1/embeddings"


# Through a real gateway, with the official SDK, to each service's fake.


@pytest.fixture(scope="module")
def preset_fakes() -> Iterator[dict[str, ProviderFake]]:
    fakes: dict[str, ProviderFake] = {}
    try:
        for name in SERVICES:
            fakes[name] = ProviderFake(name, require_key=_key(name))
        yield fakes
    finally:
        for fake in fakes.values():
            fake.close()


@pytest.fixture(scope="module")
def presets_sdk(preset_fakes: dict[str, ProviderFake], tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[openai.OpenAI]:
    # Each deployment names only its provider, its model and (for the fake) its URL: the key
    # variable is the preset's default.
    models = [{"name": name, "deployments": [{"provider": name, "model": SERVICES[name][0],
                                              "base_url": preset_fakes[name].url}]} for name in SERVICES]
    env = {key_env: _key(name) for name, (_, key_env) in SERVICES.items() if key_env}
    gw = Gateway(tmp_path_factory.mktemp("presets"), models, env=env)
    try:
        yield openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    finally:
        gw.close()


@pytest.mark.parametrize("name", SERVICES)
def test_awkward_requests_pass_each_services_rules(presets_sdk: openai.OpenAI, preset_fakes: dict[str, ProviderFake],
                                                   name: str) -> None:
    completion = presets_sdk.chat.completions.create(
        model=name, messages=MESSAGES, extra_headers={"x-request-id": f"awkward-{name}"}, **AWKWARD)
    assert completion.choices[0].message.content == ECHO
    assert completion.usage is not None and completion.usage.completion_tokens == 16
    [seen] = preset_fakes[name].requests(f"awkward-{name}")
    assert seen["path"] == "/v1/chat/completions"
    assert seen["body"]["model"] == SERVICES[name][0]
    if SERVICES[name][1]:
        assert seen["headers"]["authorization"] == f"Bearer {_key(name)}"


def test_the_fakes_refuse_what_the_services_refuse(preset_fakes: dict[str, ProviderFake]) -> None:
    # The other side of the test above: sent as the client wrote it, the services' rules bite.
    import httpx

    for name, field in (("groq", "logit_bias"), ("mistral", "seed"), ("deepseek", "logprobs"),
                        ("xai", "stop")):
        body = {"model": SERVICES[name][0], "messages": [{"role": "user", "content": "x"}], field: AWKWARD[field]}
        answer = httpx.post(preset_fakes[name].url + "/chat/completions", json=body,
                            headers={"authorization": f"Bearer {_key(name)}"})
        assert answer.status_code in (400, 422), name


@pytest.mark.parametrize("name", SERVICES)
def test_streams_with_usage(presets_sdk: openai.OpenAI, name: str) -> None:
    chunks = list(presets_sdk.chat.completions.create(model=name, messages=MESSAGES, stream=True,
                                                      stream_options={"include_usage": True}, **AWKWARD))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ECHO
    usage = next(c.usage for c in reversed(chunks) if c.usage is not None)
    assert usage.completion_tokens == 16


# Mistral's preset sends only Mistral's own fields, so the fakes' `fake` directive cannot reach it.
@pytest.mark.parametrize("name", ["groq", "deepseek", "ollama"])
def test_injected_failures_keep_their_meaning(presets_sdk: openai.OpenAI, name: str) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        presets_sdk.chat.completions.create(model=name, messages=MESSAGES,
                                            extra_body={"fake": {"status": 429, "retry_after": 2}})
    assert limited.value.response.headers["retry-after"] == "2"
    with pytest.raises(openai.InternalServerError) as failed:
        presets_sdk.chat.completions.create(model=name, messages=MESSAGES, extra_body={"fake": {"status": 500}})
    assert failed.value.status_code == 502
    stream = presets_sdk.chat.completions.create(model=name, messages=MESSAGES, stream=True,
                                                 extra_body={"fake": {"error_after": 2}})
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
