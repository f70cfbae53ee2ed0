"""Fakes of the providers the gateway adapts, each speaking that provider's wire format.

Each is the core fake's `App` with the provider's routes, auth header and error envelope, on
the core fake's server, with the same failure injection (`fake` body object, `x-fake-*`).
`python -m gateway.fake.providers NAME --port P [--require-key K]` serves one.
"""

from __future__ import annotations

from gateway.fake.app import App
from gateway.fake.behaviour import DEFAULT_BEHAVIOUR, Behaviour
from gateway.fake.providers.anthropic import AnthropicFake
from gateway.fake.providers.azure import AzureFake
from gateway.fake.providers.bedrock import BedrockFake
from gateway.fake.providers.compat import COMPAT_FAKES
from gateway.fake.providers.gemini import GeminiFake
from gateway.fake.providers.vertex import VertexFake
from gateway.fake.providers.vllm import VLLMFake
from gateway.fake.server import FakeUpstream, serve_app

FAKES: dict[str, type[App]] = {
    "anthropic": AnthropicFake,
    "azure": AzureFake,
    "bedrock": BedrockFake,
    "gemini": GeminiFake,
    "vllm": VLLMFake,
    "vertex": VertexFake,
    # The OpenAI-compatible services of the presets (groq, mistral, ollama...): compat.py
    **COMPAT_FAKES,
}


def fake_app(name: str, behaviour: Behaviour = DEFAULT_BEHAVIOUR, require_key: str | None = None) -> App:
    return FAKES[name](behaviour, require_key)


async def start_fake(name: str, host: str = "127.0.0.1", port: int = 0, behaviour: Behaviour = DEFAULT_BEHAVIOUR,
                     require_key: str | None = None) -> FakeUpstream:
    return await serve_app(fake_app(name, behaviour, require_key), host, port)


__all__ = ["FAKES", "fake_app", "start_fake"]
