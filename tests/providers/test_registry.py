"""Providers from entry points: loaded at start-up, never replacing a built-in, never fatal."""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint

import pytest

from gateway.config.file import ConfigError, config_from_dict
from gateway.core.errors import InvalidRequest
from gateway.core.types import Endpoint
from gateway.providers import PROVIDERS
from gateway.providers.openai import OpenAIProvider
from gateway.providers.registry import GROUP, provider_classes
from tests.providers.calls import adapter, deployment, request


def _entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def test_built_ins() -> None:
    assert {"openai", "azure", "anthropic", "gemini", "vllm"} <= set(PROVIDERS)
    assert provider_classes([]) == PROVIDERS


def test_entry_points_add_providers_and_bad_ones_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.providers"):
        classes = provider_classes([
            _entry("compat", "gateway.providers.openai:OpenAIProvider"),
            _entry("anthropic", "gateway.providers.openai:OpenAIProvider"),
            _entry("broken", "no_such_module_anywhere:Provider"),
            _entry("constant", "gateway.providers.registry:GROUP"),
        ])
    assert classes["compat"] is OpenAIProvider
    assert classes["anthropic"] is PROVIDERS["anthropic"]
    assert "broken" not in classes and "constant" not in classes
    assert "name is taken" in caplog.text and "failed to load" in caplog.text and "not a class" in caplog.text


def test_config_validation_knows_plugin_names() -> None:
    raw = {"models": [{"name": "m", "deployments": [{"provider": "compat", "base_url": "http://x"}]}]}
    with pytest.raises(ConfigError, match="unknown provider 'compat'"):
        config_from_dict(raw, set(PROVIDERS))
    plugins = provider_classes([_entry("compat", "gateway.providers.openai:OpenAIProvider")])
    config, _ = config_from_dict(raw, set(plugins))
    assert config.models[0].deployments[0].provider == "compat"


@pytest.mark.parametrize(("provider", "endpoint"), [
    ("anthropic", Endpoint.EMBEDDINGS), ("anthropic", Endpoint.COMPLETIONS), ("gemini", Endpoint.COMPLETIONS),
])
def test_endpoints_a_provider_lacks_are_a_clear_400(monkeypatch: pytest.MonkeyPatch, provider: str,
                                                    endpoint: Endpoint) -> None:
    d = deployment(monkeypatch, provider=provider, base_url="https://api.example.com/v1")
    with pytest.raises(InvalidRequest) as caught:
        adapter(provider).build_call(request({"model": "m", "input": "x", "prompt": "x"}, endpoint), d)
    assert (caught.value.status, caught.value.code) == (400, "unsupported_endpoint")
    assert provider in caught.value.message and endpoint.value in caught.value.message
