"""Vertex AI: Gemini and Claude models, with google-auth tokens from a service-account key that the
fake made, fetched from the fake's token endpoint, cached and refreshed before they expire."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.config.file import ConfigError, config_from_dict
from gateway.config.settings import Settings
from gateway.core.errors import InvalidRequest
from gateway.core.types import Endpoint
from gateway.providers import PROVIDERS
from gateway.providers.vertex.auth import TokenSource
from tests.procs import MASTER_KEY, Gateway
from tests.providers.calls import request
from tests.providers.helpers import reassemble
from tests.providers.procs import ProviderFake

MESSAGES: list[Any] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "alpha beta gamma"}]
ECHO = " ".join(["alpha", "beta", "gamma"][i % 3] for i in range(16))
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
TOOL_CALL = {"fake": {"tool_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}}
GEMINI = "gemini-2.5-flash"
CLAUDE = "claude-sonnet-4@20250514"


@pytest.fixture(scope="module")
def vertex_fake() -> Iterator[ProviderFake]:
    fake = ProviderFake("vertex")
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="module")
def key_file(vertex_fake: ProviderFake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vertex-key") / "service-account.json"
    path.write_bytes(httpx.get(vertex_fake.root + "/_fake/service-account.json").content)
    return path


def _deployment(**fields: Any) -> Any:
    raw = {"models": [{"name": "m", "deployments": [{"provider": "vertex", **fields}]}]}
    return config_from_dict(raw, PROVIDERS)[0].models[0].deployments[0]


def test_the_location_and_project_are_required_and_fill_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with pytest.raises(ConfigError, match="region: required"):
        _deployment(model=GEMINI)
    with pytest.raises(ConfigError, match=r"options\.project: required"):
        _deployment(model=GEMINI, region="us-central1")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    d = _deployment(model=GEMINI, region="europe-west4")
    assert (d.base_url, d.options["project"]) == ("https://europe-west4-aiplatform.googleapis.com", "env-project")
    assert _deployment(model=GEMINI, region="global").base_url == "https://aiplatform.googleapis.com"


def _call(key_file: Path, model: str, body: dict[str, Any], base_url: str = "https://vertex.example") -> Any:
    d = _deployment(model=model, region="us-east5", base_url=base_url,
                    options={"project": "proj-1", "credentials_file": str(key_file)})
    return PROVIDERS["vertex"](Settings()).build_call(request({"model": "m", **body}), d)


def test_gemini_and_claude_paths_and_bodies(key_file: Path) -> None:
    gemini = _call(key_file, GEMINI, {"messages": MESSAGES})
    assert gemini.url == ("https://vertex.example/v1/projects/proj-1/locations/us-east5/publishers/google/models/"
                          "gemini-2.5-flash:generateContent")
    assert orjson.loads(gemini.body)["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert gemini.headers["Authorization"].startswith("Bearer ya29.fake-")
    claude = _call(key_file, CLAUDE, {"messages": MESSAGES, "stream": True})
    assert claude.url.endswith("/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict")
    body = orjson.loads(claude.body)
    assert "model" not in body and body["anthropic_version"] == "vertex-2023-10-16" and body["stream"] is True
    assert body["system"] == "be brief"


def test_other_endpoints_are_a_400(key_file: Path) -> None:
    d = _deployment(model=GEMINI, region="us-east5", options={"project": "p", "credentials_file": str(key_file)})
    with pytest.raises(InvalidRequest):
        PROVIDERS["vertex"](Settings()).build_call(request({"model": "m", "input": "x"}, Endpoint.EMBEDDINGS), d)


def test_tokens_are_cached_then_refreshed_in_the_background_before_expiry(vertex_fake: ProviderFake,
                                                                         key_file: Path) -> None:
    import google.auth

    credentials, _ = google.auth.load_credentials_from_file(
        str(key_file), scopes=["https://www.googleapis.com/auth/cloud-platform"])
    source = TokenSource(credentials)
    vertex_fake.control("tokens", {"lifetime_s": 60})
    first = source.token()
    assert [source.token() for _ in range(50)] == [first] * 50 and source.fetches == 1
    # A token issued for 60 s has less than half its lifetime left 35 s on (about 24 s, well
    # above the 10 s under which a request would wait): the next is fetched in the background
    # while the current one is still handed out.
    vertex_fake.control("tokens", {"lifetime_s": 3600})
    credentials.expiry = credentials.expiry - _seconds(35)
    assert source.token() == first
    deadline = time.monotonic() + 10
    while source.fetches < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert source.fetches == 2 and source.token() != first


def _seconds(n: int) -> Any:
    from datetime import timedelta

    return timedelta(seconds=n)


@pytest.fixture(scope="module")
def vertex_gateway(vertex_fake: ProviderFake, key_file: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    vertex_fake.control("tokens", {"lifetime_s": 3600})

    def deployment(model: str) -> dict[str, Any]:
        return {"provider": "vertex", "base_url": vertex_fake.url, "model": model, "region": "us-east5",
                "options": {"project": "fake-project"}}

    models = [{"name": "gemini", "deployments": [deployment(GEMINI)]},
              {"name": "claude", "deployments": [deployment(CLAUDE)]}]
    # Application Default Credentials: the key file named by GOOGLE_APPLICATION_CREDENTIALS.
    gw = Gateway(tmp_path_factory.mktemp("vertex"), models, env={"GOOGLE_APPLICATION_CREDENTIALS": str(key_file)})
    try:
        yield gw
    finally:
        gw.close()


@pytest.fixture
def sdk(vertex_gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=vertex_gateway.url, api_key=MASTER_KEY, max_retries=0)


@pytest.mark.parametrize("model", ["gemini", "claude"])
def test_chat_and_streams(sdk: openai.OpenAI, model: str) -> None:
    completion = sdk.chat.completions.create(model=model, messages=MESSAGES)
    assert completion.choices[0].message.content == ECHO
    assert completion.usage is not None and completion.usage.completion_tokens == 16
    chunks = list(sdk.chat.completions.create(model=model, messages=MESSAGES, stream=True,
                                              stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ECHO
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 16


@pytest.mark.parametrize("model", ["gemini", "claude"])
def test_tool_calls(sdk: openai.OpenAI, model: str) -> None:
    completion = sdk.chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS, extra_body=TOOL_CALL)
    [call] = completion.choices[0].message.tool_calls or []
    assert orjson.loads(call.function.arguments) == {"city": "Paris"}
    stream = sdk.chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS, stream=True,
                                         extra_body=TOOL_CALL)
    rebuilt = reassemble([chunk.model_dump() for chunk in stream])
    assert rebuilt["finish"] == "tool_calls" and orjson.loads(rebuilt["calls"][0]["arguments"]) == {"city": "Paris"}


def test_one_token_serves_many_requests(sdk: openai.OpenAI, vertex_fake: ProviderFake) -> None:
    sdk.chat.completions.create(model="gemini", messages=MESSAGES)
    before = vertex_fake.control("tokens", {})["issued"]
    for model in ["gemini", "claude"] * 5:
        sdk.chat.completions.create(model=model, messages=MESSAGES)
    assert vertex_fake.control("tokens", {})["issued"] == before


@pytest.mark.parametrize("model", ["gemini", "claude"])
def test_failures_keep_their_meaning(sdk: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model=model, messages=MESSAGES, extra_body={"fake": {"status": 429}})
    stream = sdk.chat.completions.create(model=model, messages=MESSAGES, stream=True,
                                         extra_body={"fake": {"error_after": 2}})
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_a_key_the_token_endpoint_refuses_is_a_502(vertex_fake: ProviderFake, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    forged = orjson.loads(httpx.get(vertex_fake.root + "/_fake/service-account.json").content)
    forged["private_key"] = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    (tmp_path / "forged.json").write_bytes(orjson.dumps(forged))
    models = [{"name": "gemini", "deployments": [{
        "provider": "vertex", "base_url": vertex_fake.url, "model": GEMINI, "region": "us-east5",
        "options": {"project": "fake-project", "credentials_file": str(tmp_path / "forged.json")}}]}]
    gw = Gateway(tmp_path, models)
    try:
        client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="gemini", messages=MESSAGES)
        assert caught.value.code == "upstream_auth_failed"
        assert "PRIVATE KEY" not in caught.value.response.text
    finally:
        gw.close()
