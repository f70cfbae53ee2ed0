from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.procs import MASTER_KEY, Gateway
from tests.providers.procs import ProviderFake

NAMES = ("anthropic", "azure", "gemini", "vllm")
# Each fake wants its own key, in its own header; the gateway reads them from the environment.
KEYS = {name: f"{name}-upstream-key-0123456789" for name in NAMES}
# Public model -> (provider, upstream model)
MODELS = {
    "claude": ("anthropic", "claude-sonnet-fake"),
    "azure-gpt": ("azure", "gpt-4o-deployment"),
    "gemini": ("gemini", "gemini-3-pro"),
    "vllm": ("vllm", "meta-llama/Llama-3-8B"),
}


@pytest.fixture(scope="session")
def provider_fakes() -> Iterator[dict[str, ProviderFake]]:
    fakes = {name: ProviderFake(name, require_key=KEYS[name]) for name in NAMES}
    yield fakes
    for fake in fakes.values():
        fake.close()


@pytest.fixture(scope="session")
def providers_gateway(provider_fakes: dict[str, ProviderFake],
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    def deployment(provider: str, model: str, **extra: object) -> dict[str, object]:
        return {"provider": provider, "base_url": provider_fakes[provider].url, "model": model,
                "api_key_env": f"TEST_{provider.upper()}_KEY", **extra}

    models = [{"name": name, "deployments": [deployment(provider, model)]}
              for name, (provider, model) in MODELS.items()]
    models.append({"name": "claude-default-max", "deployments": [
        deployment("anthropic", "claude-sonnet-fake", max_tokens_default=3)]})
    # Azure's v1 API: /v1/responses is relayed natively to it (responses_api's default for v1).
    models.append({"name": "azure-v1", "deployments": [deployment("azure", "gpt-4o-deployment", api_version="v1")]})
    models.append({"name": "gemini-embedding", "deployments": [deployment("gemini", "text-embedding-004")]})
    env = {f"TEST_{name.upper()}_KEY": key for name, key in KEYS.items()}
    gw = Gateway(tmp_path_factory.mktemp("providers"), models, env=env)
    yield gw
    gw.close()


@pytest.fixture
def sdk(providers_gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=providers_gateway.url, api_key=MASTER_KEY, max_retries=0)
