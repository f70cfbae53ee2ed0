"""A Responses request's `prompt: {id, version, variables}`: a stored template in the body. Pure.

The template's rendered messages are this request's instructions, as OpenAI's saved prompts are:
they come after `instructions` and before the conversation, the response echoes them in
`instructions` (a list of messages) and the reference in `prompt`, and a next turn does not carry
them over (it names the prompt again). The version's model serves when the request names none, and
its params fill in what the request does not set, under their Responses names (`max_tokens` ->
`max_output_tokens`, `response_format` -> `text.format`, `reasoning_effort` -> `reasoning.effort`).
The Responses API has no field for `seed`, the penalties or `stop`: those reach a model served
through Chat Completions only (a native upstream cannot honour `stop`, so it is refused there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.core.errors import InvalidRequest
from gateway.dialects.responses.backend.request import text_config
from gateway.prompts.store import Version

JSON = dict[str, Any]
CHAT_ONLY = ("seed", "presence_penalty", "frequency_penalty", "stop")


@dataclass(frozen=True, slots=True)
class TemplateUse:
    template_id: str
    version: int
    # The rendered messages as chat messages, and as the Responses API's input items.
    messages: list[JSON]
    items: list[JSON]
    # The response's `prompt`: the reference as resolved (a label becomes the version it named).
    echo: JSON
    # The version's params that only Chat Completions has a field for.
    chat_params: JSON

    def refuse_native(self) -> None:
        """For a model served through the Responses API natively: what it could not honour."""
        if "stop" in self.chat_params:
            raise InvalidRequest(f"Prompt template '{self.template_id}' version {self.version} sets 'stop', which "
                                 f"the Responses API has no option for; this model is served through it.",
                                 param="prompt")


def with_template(body: JSON, version: Version, rendered: list[dict[str, str]]) -> tuple[JSON, TemplateUse]:
    """The body without its `prompt`, the version's model and params filled in, and what the template adds."""
    out = {key: value for key, value in body.items() if key != "prompt"}
    if not out.get("model") and version.model:
        out["model"] = version.model
    params = version.params
    for name in ("temperature", "top_p"):
        if name in params:
            out.setdefault(name, params[name])
    limit = params.get("max_completion_tokens", params.get("max_tokens"))
    if limit is not None:
        out.setdefault("max_output_tokens", limit)
    if "response_format" in params and "format" not in (out.get("text") or {}):
        out["text"] = {**(out.get("text") or {}), **text_config(params["response_format"], None)}
    if "reasoning_effort" in params and "effort" not in (out.get("reasoning") or {}):
        out["reasoning"] = {**(out.get("reasoning") or {}), "effort": params["reasoning_effort"]}
    variables = body["prompt"].get("variables") or {}
    use = TemplateUse(
        template_id=version.template_id,
        version=version.version,
        messages=[dict(m) for m in rendered],
        items=[{"type": "message", "role": m["role"], "content": m["content"]} for m in rendered],
        echo={"id": version.template_id, "version": str(version.version), "variables": variables},
        chat_params={name: params[name] for name in CHAT_ONLY if name in params},
    )
    return out, use
