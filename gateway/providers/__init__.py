"""Provider adapters, registered by name. Third-party providers arrive through entry points (later)."""

from __future__ import annotations

from gateway.providers.base import Provider, StreamTranslator
from gateway.providers.openai import OpenAIProvider

# name -> adapter class; an adapter class takes the process settings.
PROVIDERS: dict[str, type] = {
    "openai": OpenAIProvider,
}

__all__ = ["PROVIDERS", "Provider", "StreamTranslator"]
