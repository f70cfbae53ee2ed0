"""PII redaction: e-mail addresses, phone numbers, payment cards (Luhn), IBANs (mod 97) and
national ID formats an operator gives as patterns.

    - name: pii
      config:
        mode: mask           # mask: the upstream never sees it | log_only: logs show it masked | refuse: 400
        response: mask       # answers (streamed too, across chunk boundaries): mask | off
        kinds: [email, phone, card, iban]
        national_ids: {ssn_us: '\\b\\d{3}-\\d{2}-\\d{4}\\b'}

Found items become `[EMAIL]`, `[PHONE]`, `[CARD]`, `[IBAN]`, `[SSN_US]`. Decisions count items
per kind; the items themselves are never recorded.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import regex
from pydantic import field_validator

from gateway.core.types import GuardrailDecision
from gateway.pipeline.context import RequestContext
from gateway.plugins.base import Answer, Before, ChunkHook, Plugin, PluginConfig, Refused, Services
from gateway.plugins.patterns import Counts, Masker, Rule
from gateway.plugins.text import request_texts, rewrite_answer, rewrite_request

Kind = Literal["email", "phone", "card", "iban"]

EMAIL = regex.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
CARD = regex.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?!\d)")
IBAN = regex.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
PHONE = regex.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?!\w)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def valid_card(text: str) -> int | None:
    digits = "".join(ch for ch in text if ch.isdigit())
    return len(text) if 13 <= len(digits) <= 19 and luhn_ok(digits) else None


def iban_ok(compact: str) -> bool:
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def valid_iban(text: str) -> int | None:
    """The longest prefix, ending at a group boundary, that passes the mod-97 check."""
    ends = [i for i, ch in enumerate(text) if ch == " "] + [len(text)]
    for end in reversed(ends):
        if iban_ok(text[:end].replace(" ", "")):
            return end
    return None


def valid_phone(text: str) -> int | None:
    digits = sum(ch.isdigit() for ch in text)
    # Without a country code, ten digits at least: dates (2024-01-15) and short numbers are left alone.
    low = 8 if text.startswith("+") else 10
    return len(text) if low <= digits <= 15 else None


BUILT_IN: dict[str, Rule] = {
    "email": Rule("email", EMAIL, "[EMAIL]"),
    "card": Rule("card", CARD, "[CARD]", valid_card),
    "iban": Rule("iban", IBAN, "[IBAN]", valid_iban),
    "phone": Rule("phone", PHONE, "[PHONE]", valid_phone),
}


class PiiConfig(PluginConfig):
    mode: Literal["mask", "log_only", "refuse"] = "mask"
    response: Literal["mask", "off"] = "mask"
    kinds: list[Kind] = ["email", "phone", "card", "iban"]
    national_ids: dict[str, str] = {}

    @field_validator("national_ids")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not regex.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", name):
                raise ValueError(f"{name!r}: a name is a letter then letters, digits or _ (32 at most)")
            try:
                regex.compile(pattern)
            except regex.error as exc:
                raise ValueError(f"{name}: not a valid pattern ({exc})") from None
        return value


def build_masker(config: PiiConfig) -> Masker:
    # Operators' patterns first: they are the most specific; then the built-ins, cards before phones.
    rules = [Rule(name, regex.compile(p), f"[{name.upper()}]") for name, p in config.national_ids.items()]
    rules += [BUILT_IN[kind] for kind in ("email", "card", "iban", "phone") if kind in config.kinds]
    return Masker(rules)


class PiiRedactor(Plugin):
    name = "pii"
    Config = PiiConfig
    config: PiiConfig

    def __init__(self, config: dict[str, Any], services: Services) -> None:
        super().__init__(config, services)
        self.masker = build_masker(self.config)

    async def before(self, ctx: RequestContext) -> Before | None:
        mode = self.config.mode
        counts: Counts = {}
        for _, text in request_texts(ctx.body, ctx.endpoint):
            for kind, n in self.masker.found(text).items():
                counts[kind] = counts.get(kind, 0) + n
        if not counts:
            return None
        if mode == "mask":  # a masked copy goes on; the body the client sent is left as it was
            masked = copy.deepcopy(ctx.body)
            rewrite_request(masked, ctx.endpoint, self.masker.mask)
            return Before(body=masked, decisions=self._decisions(counts, "masked", "request"))
        if mode == "refuse":
            self._decide(ctx, counts, "refused", "request")
            kinds = ", ".join(sorted(counts))
            raise Refused(f"The request contains personal data ({kinds}) and this key may not send it.",
                          code="pii_detected")
        # log_only: the upstream gets the request as it is; logs get a masked copy.
        redacted = copy.deepcopy(ctx.redacted_body if ctx.redacted_body is not None else ctx.body)
        rewrite_request(redacted, ctx.endpoint, self.masker.mask)
        return Before(redacted=redacted, decisions=self._decisions(counts, "logged", "request"))

    def on_chunk(self, ctx: RequestContext) -> ChunkHook | None:
        if self.config.response == "off":
            return None
        return self.masker.stream(lambda counts: self._decide(ctx, counts, "masked", "response"))

    async def after(self, ctx: RequestContext, answer: Answer) -> None:
        if self.config.response == "off" or answer.streamed:
            return
        counts: Counts = {}
        rewrite_answer(answer.body, lambda text: self.masker.mask(text, counts))
        if counts:
            answer.changed = True
            self._decide(ctx, counts, "masked", "response")

    def _decide(self, ctx: RequestContext, counts: Counts, action: str, where: str) -> None:
        for kind, n in sorted(counts.items()):
            self.decide(ctx, kind, action, where=where, count=n)

    def _decisions(self, counts: Counts, action: str, where: str) -> tuple[GuardrailDecision, ...]:
        return tuple(self.decision(kind, action, where=where, count=n) for kind, n in sorted(counts.items()))
