"""Limits on what a key may send: prompt size, `max_tokens`, and which parameters it may set.

    - name: request_limits
      config:
        max_prompt_chars: 20000          # the text the model reads, all messages together
        max_tokens: 2048                 # the most a request may ask for (max_tokens / max_completion_tokens)
        clamp_max_tokens: false          # true: lower it to the cap instead of refusing
        allowed_params: [temperature, top_p, max_tokens, stop, tools, tool_choice]

Each refusal is a 400 naming the parameter (`param`), as OpenAI's own validation does.
`allowed_params` lists optional parameters; the ones a request cannot do without (model,
messages, prompt, input, stream, stream_options, user) are always allowed.
"""

from __future__ import annotations

from gateway.pipeline.context import RequestContext
from gateway.plugins.base import Before, Plugin, PluginConfig, Refused
from gateway.plugins.text import prompt_chars

ALWAYS_ALLOWED = frozenset({"model", "messages", "prompt", "input", "stream", "stream_options", "user"})
TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


class RequestLimitsConfig(PluginConfig):
    max_prompt_chars: int | None = None
    max_tokens: int | None = None
    clamp_max_tokens: bool = False
    allowed_params: list[str] | None = None


class RequestLimits(Plugin):
    name = "request_limits"
    Config = RequestLimitsConfig
    config: RequestLimitsConfig

    async def before(self, ctx: RequestContext) -> Before | None:
        c = self.config
        body = ctx.body
        clamped: dict[str, int] = {}
        if c.allowed_params is not None:
            allowed = ALWAYS_ALLOWED.union(c.allowed_params)
            for name in body:
                if name not in allowed:
                    self.decide(ctx, "parameter", "refused")
                    raise Refused(f"This key may not set the parameter '{name}'.", param=name,
                                  code="unsupported_parameter")
        if c.max_tokens is not None:
            for name in TOKEN_FIELDS:
                value = body.get(name)
                if isinstance(value, int) and value > c.max_tokens:
                    if c.clamp_max_tokens:
                        clamped[name] = c.max_tokens
                        continue
                    self.decide(ctx, "max_tokens", "refused")
                    raise Refused(f"'{name}' is {value}; this key may ask for at most {c.max_tokens}.",
                                  param=name, code="invalid_value")
        if c.max_prompt_chars is not None:
            size = prompt_chars(body, ctx.endpoint)
            if size > c.max_prompt_chars:
                for _ in clamped:  # what was clamped before the refusal is recorded with it
                    self.decide(ctx, "max_tokens", "clamped")
                self.decide(ctx, "max_prompt_chars", "refused")
                raise Refused(f"The prompt is {size} characters; this key may send at most {c.max_prompt_chars}.",
                              param="messages" if "messages" in body else None, code="prompt_too_large")
        if not clamped:
            return None
        decisions = tuple(self.decision("max_tokens", "clamped") for _ in clamped)
        return Before(body={**body, **clamped}, decisions=decisions)
