from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment, free_port
from tests.providers.procs import ProviderFake

ANTHROPIC_KEY = "sk-ant-upstream-key-0123456789"
AGENTS_DEFAULT_MODEL = "gpt-5.6-luna"  # openai-agents 0.24's get_default_model()


@pytest.fixture(scope="session")
def anthropic_fake() -> Iterator[ProviderFake]:
    fake = ProviderFake("anthropic", require_key=ANTHROPIC_KEY)
    yield fake
    fake.close()


@pytest.fixture(scope="session")
def messages_gateway(upstream: FakeUpstream, anthropic_fake: ProviderFake,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`/v1/messages` served by an OpenAI-compatible backend ("gpt") and by the Anthropic adapter ("claude")."""
    models = [
        {"name": "gpt", "deployments": [deployment(upstream)]},
        {"name": "claude", "deployments": [{"provider": "anthropic", "base_url": anthropic_fake.url,
                                            "model": "claude-upstream", "api_key_env": "TEST_ANTHROPIC_KEY"}]},
    ]
    gw = Gateway(tmp_path_factory.mktemp("messages"), models, env={"TEST_ANTHROPIC_KEY": ANTHROPIC_KEY})
    yield gw
    gw.close()


@pytest.fixture
def claude_sdk(messages_gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=messages_gateway.base, api_key=MASTER_KEY, max_retries=0)


@pytest.fixture(scope="session")
def responses_gateway(upstream: FakeUpstream, anthropic_fake: ProviderFake,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`/v1/responses` served by an OpenAI-compatible backend through Chat Completions ("gpt"), by the
    same fake's native Responses API ("native"), and by the Anthropic adapter ("claude")."""
    models = [
        # The Agents SDK's default model name reaches the translated backend.
        {"name": "gpt", "deployments": [deployment(upstream)], "aliases": [AGENTS_DEFAULT_MODEL]},
        {"name": "native", "deployments": [deployment(upstream, responses_api="native")]},
        # A model served only through the Responses API: chat and messages clients are translated to it.
        {"name": "only", "deployments": [deployment(upstream, responses_api="only")]},
        # A native deployment that is down, falling back to the translated group.
        {"name": "flaky", "fallbacks": ["gpt"], "retries": 0, "deployments": [
            {"provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "responses_api": "native"}]},
        {"name": "claude", "deployments": [{"provider": "anthropic", "base_url": anthropic_fake.url,
                                            "model": "claude-upstream", "api_key_env": "TEST_ANTHROPIC_KEY"}]},
    ]
    gw = Gateway(tmp_path_factory.mktemp("responses"), models, env={"TEST_ANTHROPIC_KEY": ANTHROPIC_KEY})
    yield gw
    gw.close()


@pytest.fixture
def responses_sdk(responses_gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=responses_gateway.url, api_key=MASTER_KEY, max_retries=0)
