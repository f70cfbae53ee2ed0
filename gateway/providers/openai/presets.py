"""Hosted and local OpenAI-compatible services by name: `provider: groq` and a model is a deployment.

A preset is the `openai` adapter plus what that service needs: its base URL and the environment
variable its key is usually in (both filled in at config load when the deployment leaves them
out), and its quirks as data: request fields it rejects (dropped), fields it names differently
(renamed), fields only some of its models reject, and headers it reads. docs/providers.md lists
each preset's quirks and where they are documented.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint
from gateway.providers.openai import OpenAIProvider

_TOKENS = {"max_completion_tokens": "max_tokens"}


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    base_url: str
    # None: a local server that takes no key unless the deployment names one.
    api_key_env: str | None
    drop: frozenset[str] = frozenset()
    # OpenAI's name -> the service's; a client that sent both keeps the service's own.
    rename: Mapping[str, str] = field(default_factory=dict)
    # (regular expression a model id fully matches, fields those models reject)
    drop_for_models: tuple[tuple[str, frozenset[str]], ...] = ()
    # Set: the service refuses any field outside its own schema, so only these are sent (after renaming).
    allowed: frozenset[str] | None = None
    # The service rejects `name` on messages.
    drop_message_names: bool = False
    # Whether streams may ask for the usage chunk (`stream_options`); False where the service
    # rejects the field (it then reports usage in its last chunk unasked).
    stream_options: bool = True
    # deployment.options key -> header, for services that read attribution headers.
    option_headers: Mapping[str, str] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY",
           drop=frozenset({"logprobs", "top_logprobs", "logit_bias"}), drop_message_names=True),
    Preset("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY",
           allowed=frozenset({"model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop",
                              "random_seed", "response_format", "tools", "tool_choice", "presence_penalty",
                              "frequency_penalty", "n", "prediction", "parallel_tool_calls", "safe_prompt",
                              "prompt_mode", "input", "output_dimension", "output_dtype", "encoding_format"}),
           rename={**_TOKENS, "seed": "random_seed"}, stream_options=False),
    Preset("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", rename=_TOKENS,
           drop_for_models=((r"deepseek-reasoner.*", frozenset({"logprobs", "top_logprobs"})),)),
    Preset("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY", rename=_TOKENS),
    Preset("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY", rename=_TOKENS),
    Preset("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY",
           option_headers={"app_url": "HTTP-Referer", "app_name": "X-Title"}),
    Preset("xai", "https://api.x.ai/v1", "XAI_API_KEY",
           drop_for_models=(
               # The first reasoning models; later ones (grok-4.x) take reasoning_effort again.
               (r"grok-4(-0709|-latest)?", frozenset({"presence_penalty", "frequency_penalty", "stop",
                                                     "reasoning_effort"})),
               (r"grok-3-mini.*", frozenset({"presence_penalty", "frequency_penalty", "stop"})),
           )),
    Preset("ollama", "http://localhost:11434/v1", None, drop=frozenset({"logit_bias", "user", "n"}),
           rename=_TOKENS),
    Preset("llamacpp", "http://localhost:8080/v1", None, rename=_TOKENS),
)}


class PresetProvider(OpenAIProvider):
    """The `openai` adapter shaped by one preset; `preset_class` makes one class per preset."""

    preset: Preset
    default_base_url: str
    default_api_key_env: str | None

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # Worked out once per upstream model: the fields to drop for it.
        self._dropped: dict[str, frozenset[str]] = {}

    def request_body(self, request: ClientRequest, deployment: Deployment) -> dict[str, Any]:
        body = super().request_body(request, deployment)
        preset = self.preset
        for name, theirs in preset.rename.items():
            if name in body:
                value = body.pop(name)
                body.setdefault(theirs, value)
        model = body["model"]
        dropped = self._dropped.get(model)
        if dropped is None:
            dropped = self._dropped[model] = preset.drop.union(
                *(fields for pattern, fields in preset.drop_for_models if re.fullmatch(pattern, model)))
        for name in dropped & body.keys():
            del body[name]
        if preset.allowed is not None and request.endpoint in (Endpoint.CHAT, Endpoint.EMBEDDINGS):
            for name in body.keys() - preset.allowed:
                del body[name]
        if request.stream and not preset.stream_options:
            body.pop("stream_options", None)
        if preset.drop_message_names and isinstance(messages := body.get("messages"), list):
            body["messages"] = [_without_name(m) for m in messages]
        return body

    def extra_headers(self, deployment: Deployment) -> dict[str, str]:
        return {header: str(deployment.options[key]) for key, header in self.preset.option_headers.items()
                if deployment.options.get(key)}


def _without_name(message: Any) -> Any:
    if isinstance(message, dict) and "name" in message:
        return {k: v for k, v in message.items() if k != "name"}
    return message


def preset_class(preset: Preset) -> type[PresetProvider]:
    return type(f"{preset.name.title()}Provider", (PresetProvider,), {
        "name": preset.name, "preset": preset,
        "default_base_url": preset.base_url, "default_api_key_env": preset.api_key_env,
    })


PRESET_PROVIDERS: dict[str, type[PresetProvider]] = {name: preset_class(p) for name, p in PRESETS.items()}
