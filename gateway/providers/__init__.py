"""Provider adapters, registered by name. Third-party providers arrive through entry points (registry.py)."""

from __future__ import annotations

from gateway.core.types import StreamTranslator
from gateway.providers.anthropic import AnthropicProvider
from gateway.providers.azure import AzureProvider
from gateway.providers.base import Provider, ProviderClass
from gateway.providers.bedrock import BedrockProvider
from gateway.providers.gemini import GeminiProvider
from gateway.providers.openai import OpenAIProvider
from gateway.providers.openai.presets import PRESET_PROVIDERS
from gateway.providers.vertex import VertexProvider
from gateway.providers.vllm import VLLMProvider

# name -> adapter class; an adapter class takes the process settings and makes a `Provider`.
PROVIDERS: dict[str, ProviderClass] = {
    "openai": OpenAIProvider,
    "azure": AzureProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "vllm": VLLMProvider,
    "bedrock": BedrockProvider,
    "vertex": VertexProvider,
    # OpenAI-compatible services by name (groq, mistral, ollama...): gateway/providers/openai/presets.py
    **PRESET_PROVIDERS,
}

__all__ = ["PROVIDERS", "Provider", "ProviderClass", "StreamTranslator"]
