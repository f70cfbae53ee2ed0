"""`POST /v1/messages/count_tokens` with the official anthropic SDK; `?beta=true` and the beta
headers Claude Code sends; `HEAD /` and `GET /`. Through a real gateway process, on an
OpenAI-compatible backend ("gpt", the gateway's estimate) and the Anthropic adapter ("claude",
relayed to the upstream's own count_tokens)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from gateway.dialects.anthropic.count_tokens import estimate
from gateway.dialects.anthropic.request import to_openai
from tests.procs import MASTER_KEY, Gateway, free_port
from tests.providers.procs import ProviderFake

SYSTEM = "be brief"
MESSAGES: list[Any] = [{"role": "user", "content": "alpha beta gamma"}]
TOOLS: list[Any] = [{"name": "get_weather", "description": "Weather by city",
                     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
# Claude Code's shape on a model name it does not know: a system entry after the first user message.
WITH_SYSTEM_ENTRY: list[Any] = [*MESSAGES, {"role": "system", "content": "the environment is a test"}]


def test_anthropic_backend_counts_at_the_upstream(claude_sdk: anthropic.Anthropic,
                                                  anthropic_fake: ProviderFake) -> None:
    counted = claude_sdk.messages.with_raw_response.count_tokens(model="claude", system=SYSTEM, messages=MESSAGES)
    # The fake counts the words of the system prompt and of every message: 2 + 3.
    assert counted.parse().input_tokens == 5
    assert counted.headers["x-gateway-token-count"] == "upstream"
    [seen] = anthropic_fake.requests(counted.headers["request-id"])
    assert seen["path"] == "/v1/messages/count_tokens"
    assert seen["body"]["model"] == "claude-upstream"  # the deployment's model, not the public name
    assert "max_tokens" not in seen["body"] and "stream" not in seen["body"]


def test_the_system_entry_is_counted_where_it_would_be_sent(claude_sdk: anthropic.Anthropic) -> None:
    counted = claude_sdk.messages.count_tokens(model="claude", system=SYSTEM, messages=WITH_SYSTEM_ENTRY)
    assert counted.input_tokens == 10


def test_other_backends_get_the_gateways_estimate(claude_sdk: anthropic.Anthropic) -> None:
    counted = claude_sdk.messages.with_raw_response.count_tokens(model="gpt", system=SYSTEM, messages=MESSAGES,
                                                                 tools=TOOLS)
    body = {"model": "gpt", "system": SYSTEM, "messages": MESSAGES, "tools": TOOLS}
    assert counted.headers["x-gateway-token-count"] == "estimate"
    assert counted.parse().input_tokens == estimate(to_openai(orjson.dumps(body), counting=True))
    without_tools = claude_sdk.messages.count_tokens(model="gpt", system=SYSTEM, messages=MESSAGES)
    # The tool definitions are input too.
    assert 0 < without_tools.input_tokens < counted.parse().input_tokens


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_beta_count_tokens_with_claude_codes_headers(claude_sdk: anthropic.Anthropic, model: str) -> None:
    # `client.beta` sends `?beta=true` and the anthropic-beta header, as Claude Code does.
    counted = claude_sdk.beta.messages.count_tokens(
        model=model, system=SYSTEM, messages=WITH_SYSTEM_ENTRY,
        betas=["token-counting-2024-11-01", "claude-code-20250219", "mid-conversation-system-2026-04-07"])
    assert counted.input_tokens > 0


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_beta_messages_with_a_system_entry(claude_sdk: anthropic.Anthropic, model: str) -> None:
    message = claude_sdk.beta.messages.create(
        model=model, max_tokens=100, system=SYSTEM, messages=WITH_SYSTEM_ENTRY,
        betas=["claude-code-20250219", "interleaved-thinking-2025-05-14", "mid-conversation-system-2026-04-07"],
        extra_headers={"x-app": "cli", "anthropic-dangerous-direct-browser-access": "true"})
    assert message.stop_reason == "end_turn" and message.content[0].type == "text"


def test_errors_in_anthropics_shape(messages_gateway: Gateway, claude_sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude_sdk.messages.count_tokens(model="no-such-model", messages=MESSAGES)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    wrong = anthropic.Anthropic(base_url=messages_gateway.base, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.count_tokens(model="gpt", messages=MESSAGES)
    response = httpx.post(messages_gateway.base + "/v1/messages/count_tokens", json={"model": "gpt"},
                          headers={"x-api-key": MASTER_KEY})
    assert response.status_code == 400
    assert response.json()["error"] == {"type": "invalid_request_error",
                                        "message": "messages: a non-empty list is required"}
    response = httpx.get(messages_gateway.base + "/v1/messages/count_tokens", headers={"x-api-key": MASTER_KEY})
    assert response.status_code == 405


def test_root_names_the_service(messages_gateway: Gateway) -> None:
    got = httpx.get(messages_gateway.base + "/")
    assert got.status_code == 200 and got.json()["service"] == "llm-gateway" and got.json()["api"] == "/v1"
    head = httpx.head(messages_gateway.base + "/")
    assert head.status_code == 200 and head.content == b""
    assert httpx.post(messages_gateway.base + "/").status_code == 405


def test_upstream_failures_are_errors_not_counts(anthropic_fake: ProviderFake, tmp_path: Path) -> None:
    models = [
        {"name": "wrong-key", "deployments": [{"provider": "anthropic", "base_url": anthropic_fake.url,
                                               "api_key_env": "TEST_WRONG_KEY"}]},
        {"name": "nobody-there", "deployments": [{"provider": "anthropic",
                                                  "base_url": f"http://127.0.0.1:{free_port()}/v1"}]},
    ]
    gw = Gateway(tmp_path, models, env={"TEST_WRONG_KEY": "sk-ant-not-the-key"})
    try:
        sdk = anthropic.Anthropic(base_url=gw.base, api_key=MASTER_KEY, max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as refused:
            sdk.messages.count_tokens(model="wrong-key", messages=MESSAGES)
        with pytest.raises(anthropic.APIStatusError) as unreachable:
            sdk.messages.count_tokens(model="nobody-there", messages=MESSAGES)
    finally:
        gw.close()
    for caught in (refused.value, unreachable.value):
        assert caught.status_code >= 500 and caught.body["type"] == "error"  # type: ignore[index]
        assert caught.response.headers["request-id"].startswith("req_")
    assert unreachable.value.status_code == 502
    assert "unreachable" in unreachable.value.body["error"]["message"]  # type: ignore[index]
