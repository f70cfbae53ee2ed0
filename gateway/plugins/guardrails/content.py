"""Content rules: terms and patterns a team may not send or receive, with exceptions.

    - name: content
      config:
        deny: [project aurora, internal-only]     # whole words, any case
        deny_patterns: ['\\bACME-\\d{4}\\b']
        allow: [aurora borealis]                  # never counts as denied, even around a denied term
        input: refuse                             # refuse (400) | mask | off
        output: mask                              # mask (streams too) | off

A denied term in a request is refused (or masked before it leaves); in an answer it becomes
`[REDACTED]`. Decisions say which rule kind matched (`deny`), never the term.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import regex
from pydantic import field_validator

from gateway.pipeline.context import RequestContext
from gateway.plugins.base import Answer, Before, ChunkHook, Plugin, PluginConfig, Refused, Services
from gateway.plugins.patterns import Counts, Masker, Rule, literal_terms
from gateway.plugins.text import request_texts, rewrite_answer, rewrite_request

REDACTED = "[REDACTED]"


class ContentConfig(PluginConfig):
    deny: list[str] = []
    deny_patterns: list[str] = []
    allow: list[str] = []
    allow_patterns: list[str] = []
    input: Literal["refuse", "mask", "off"] = "refuse"
    output: Literal["mask", "off"] = "mask"

    @field_validator("deny_patterns", "allow_patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for i, pattern in enumerate(value):
            try:
                regex.compile(pattern)
            except regex.error as exc:
                raise ValueError(f"[{i}]: not a valid pattern ({exc})") from None
        return value


def _union(terms: list[str], patterns: list[str]) -> regex.Pattern[str] | None:
    parts = [p for p in (literal_terms(terms), *(f"(?:{p})" for p in patterns)) if p]
    return regex.compile("|".join(parts), regex.IGNORECASE) if parts else None


class ContentRules(Plugin):
    name = "content"
    Config = ContentConfig
    config: ContentConfig

    def __init__(self, config: dict[str, Any], services: Services) -> None:
        super().__init__(config, services)
        deny = _union(self.config.deny, self.config.deny_patterns)
        rules = [Rule("deny", deny, REDACTED)] if deny is not None else []
        self.masker = Masker(rules, exempt=_union(self.config.allow, self.config.allow_patterns))

    async def before(self, ctx: RequestContext) -> Before | None:
        if self.config.input == "off" or not self.masker.rules:
            return None
        found = sum(self.masker.found(text).get("deny", 0) for _, text in request_texts(ctx.body, ctx.endpoint))
        if not found:
            return None
        if self.config.input == "mask":  # a masked copy goes on; the body the client sent is left as it was
            masked = copy.deepcopy(ctx.body)
            rewrite_request(masked, ctx.endpoint, self.masker.mask)
            return Before(body=masked, decisions=(self.decision("deny", "masked", count=found),))
        self.decide(ctx, "deny", "refused", count=found)
        raise Refused("The request contains content this key's team does not allow.", code="content_rule")

    def on_chunk(self, ctx: RequestContext) -> ChunkHook | None:
        if self.config.output == "off" or not self.masker.rules:
            return None
        return self.masker.stream(lambda counts: self.decide(ctx, "deny", "masked", where="response",
                                                             count=counts["deny"]))

    async def after(self, ctx: RequestContext, answer: Answer) -> None:
        if self.config.output == "off" or answer.streamed or not self.masker.rules:
            return
        counts: Counts = {}
        rewrite_answer(answer.body, lambda text: self.masker.mask(text, counts))
        if counts:
            answer.changed = True
            self.decide(ctx, "deny", "masked", where="response", count=counts["deny"])
