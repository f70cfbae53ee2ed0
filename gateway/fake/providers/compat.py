"""Fakes of the hosted and local OpenAI-compatible services the presets name.

Each is the core fake's OpenAI API (same failure injection) plus what that service refuses, as
its public documentation says: fields it answers 400 to, fields only some of its models refuse,
`name` on messages, or any field outside its own schema (Mistral, with a 422). The lists here
are written from those documents on their own, not read from the presets, so a test through the
gateway checks the preset against the service's rules rather than against itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.fake.app import Answer, App, Request, json_answer
from gateway.fake.behaviour import DEFAULT_BEHAVIOUR, Behaviour, validate


@dataclass(frozen=True, slots=True)
class Rules:
    refused: frozenset[str] = frozenset()
    refused_for_models: tuple[tuple[str, frozenset[str]], ...] = ()
    refuses_message_names: bool = False
    # Set: every other top-level field is refused (a 422, as FastAPI-style validation answers).
    schema: frozenset[str] | None = None
    auth: bool = True
    # Streams end with usage whether or not the request asked (Mistral's do).
    usage_unasked: bool = False


_MISTRAL_SCHEMA = frozenset({
    "model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop", "random_seed",
    "response_format", "tools", "tool_choice", "presence_penalty", "frequency_penalty", "n",
    "prediction", "parallel_tool_calls", "safe_prompt", "prompt_mode", "fake",
})

RULES: dict[str, Rules] = {
    "groq": Rules(refused=frozenset({"logprobs", "logit_bias", "top_logprobs"}), refuses_message_names=True),
    "mistral": Rules(schema=_MISTRAL_SCHEMA, usage_unasked=True),
    "deepseek": Rules(refused_for_models=(("deepseek-reasoner", frozenset({"logprobs", "top_logprobs"})),)),
    "together": Rules(),
    "fireworks": Rules(),
    "openrouter": Rules(),
    "xai": Rules(refused_for_models=(
        ("grok-4-0709", frozenset({"presence_penalty", "frequency_penalty", "stop", "reasoning_effort"})),
        ("grok-3-mini", frozenset({"presence_penalty", "frequency_penalty", "stop"})),
    )),
    "ollama": Rules(auth=False),
    "llamacpp": Rules(auth=False),
}


class CompatFake(App):
    """One service's fake: `rules` is set by `compat_fake`."""

    rules: Rules = Rules()

    def __init__(self, behaviour: Behaviour = DEFAULT_BEHAVIOUR, require_key: str | None = None) -> None:
        super().__init__(validate(behaviour), require_key if self.rules.auth else None)

    def _answer(self, req: Request, body: Any, seq: int) -> Answer:
        if isinstance(body, dict) and req.path.endswith("/chat/completions"):
            refusal = self._refusal(body)
            if refusal is not None:
                return refusal
            if self.rules.usage_unasked and body.get("stream") is True:
                body = {**body, "stream_options": {"include_usage": True}}
        return super()._answer(req, body, seq)

    def _refusal(self, body: dict[str, Any]) -> Answer | None:
        rules = self.rules
        if rules.schema is not None:
            unknown = sorted(set(body) - rules.schema)
            if unknown:
                return json_answer(422, {"object": "error", "type": "invalid_request_error", "code": None,
                                         "message": f"Extra inputs are not permitted: {unknown[0]}"})
        model = str(body.get("model") or "")
        refused = rules.refused.union(*(f for prefix, f in rules.refused_for_models if model.startswith(prefix)))
        for name in sorted(refused & body.keys()):
            return _refused(f"'{name}' is not supported by this model", name)
        if rules.refuses_message_names:
            for i, message in enumerate(body.get("messages") or ()):
                if isinstance(message, dict) and "name" in message:
                    return _refused("'messages.name' : property 'name' is unsupported", f"messages[{i}].name")
        return None


def _refused(message: str, param: str) -> Answer:
    return json_answer(400, {"error": {"message": message, "type": "invalid_request_error", "param": param,
                                       "code": "unsupported_parameter"}})


def compat_fake(name: str) -> type[CompatFake]:
    return type(f"{name.title()}Fake", (CompatFake,), {"rules": RULES[name]})


COMPAT_FAKES: dict[str, type[App]] = {name: compat_fake(name) for name in RULES}
