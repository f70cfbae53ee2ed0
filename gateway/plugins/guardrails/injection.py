"""Prompt-injection and jailbreak heuristics: a score in [0, 1] from weighted signals, and an action.

    - name: injection
      config: {threshold: 0.5, action: flag}    # flag: recorded in the ledger row | refuse: 400

Signals (each counted once per request; the score is 1 - prod(1 - weight)):

    override     "ignore/disregard/forget (all) previous instructions" and the like
    persona      known jailbreak personas: DAN, "developer mode", "no restrictions"
    exfiltrate   asking for the system prompt or hidden instructions
    role_markup  chat-template markup or a fake "system:" turn inside user text
    hidden       invisible characters (zero-width, Unicode tags) or instructions in HTML comments
    tool_result  any of the above inside a tool result (a document or web page the model reads):
                 instructions hidden where only data should be

A heuristic, not a classifier: it catches the common phrasings cheaply and says so in the ledger;
tune `threshold` against your traffic before choosing `refuse`.
"""

from __future__ import annotations

from typing import Literal

import regex
from pydantic import Field

from gateway.pipeline.context import RequestContext
from gateway.plugins.base import Before, Plugin, PluginConfig, Refused
from gateway.plugins.text import request_texts

_I = regex.IGNORECASE

SIGNALS: dict[str, tuple[float, regex.Pattern[str]]] = {
    "override": (0.6, regex.compile(
        r"\b(?:ignore|disregard|forget|override|bypass)\b(?:\W+\w+){0,3}?\W+"
        r"(?:previous|prior|above|earlier|preceding|all|your|the|any)\b(?:\W+\w+){0,2}?\W+"
        r"(?:instructions?|prompts?|rules|directions|guidelines|context|messages?)\b", _I)),
    "persona": (0.5, regex.compile(
        r"\b(?:DAN|do anything now|developer mode|jailbr(?:eak|oken)|unfiltered mode|god mode)\b"
        r"|\b(?:without|no|free of)\s+(?:any\s+)?(?:restrictions|filters|limitations|ethical guidelines|rules)\b"
        r"|\byou are (?:now|no longer)\b", _I)),
    "exfiltrate": (0.5, regex.compile(
        r"\b(?:reveal|show|print|repeat|output|tell me|what (?:is|are|was|were))\b(?:\W+\w+){0,3}?\W+"
        r"(?:system prompt|system message|initial (?:prompt|instructions)|hidden instructions)\b", _I)),
    "role_markup": (0.4, regex.compile(
        r"<\|im_start\|>|<\|(?:system|assistant)\|>|\[/?INST\]|<</?SYS>>|^\s*#{0,3}\s*system\s*:", _I | regex.M)),
    "hidden": (0.4, regex.compile(
        r"[\u200b-\u200f\u2060-\u2064\ufeff]|[\U000e0000-\U000e007f]"
        r"|<!--(?:(?!-->).){0,400}?\b(?:ignore|instruction|assistant|system|must)\b", _I | regex.S)),
}
TOOL_ROLES = frozenset({"tool", "function"})
TOOL_WEIGHT = 0.5


class InjectionConfig(PluginConfig):
    threshold: float = Field(default=0.5, gt=0, le=1)
    action: Literal["flag", "refuse"] = "flag"
    # Which message roles are read (system prompts are the operator's own).
    roles: list[str] = ["user", "tool", "function"]


def score(texts: list[tuple[str, str]], roles: frozenset[str]) -> tuple[float, list[str]]:
    hit: dict[str, float] = {}
    for role, text in texts:
        if role not in roles:
            continue
        for name, (weight, pattern) in SIGNALS.items():
            if name not in hit and pattern.search(text):
                hit[name] = weight
        if role in TOOL_ROLES and hit and "tool_result" not in hit:
            hit["tool_result"] = TOOL_WEIGHT
    remaining = 1.0
    for weight in hit.values():
        remaining *= 1.0 - weight
    return round(1.0 - remaining, 3), sorted(hit)


class InjectionGuard(Plugin):
    name = "injection"
    Config = InjectionConfig
    config: InjectionConfig

    async def before(self, ctx: RequestContext) -> Before | None:
        value, signals = score(list(request_texts(ctx.body, ctx.endpoint)), frozenset(self.config.roles))
        if value < self.config.threshold:
            return None
        kind = "injection:" + "+".join(signals)
        if self.config.action == "refuse":
            self.decide(ctx, kind, "refused", score=value)
            raise Refused("The request looks like a prompt-injection attempt and was refused.",
                          code="prompt_injection")
        return Before(decisions=(self.decision(kind, "flagged", score=value),))
