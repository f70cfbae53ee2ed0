"""The `complexity` routing stage: a public model name that stands for tiers, each a model group.

    models:
      - name: auto
        complexity:
          tiers:
            - {name: small, model: gpt-4o-mini, max_score: 0.30}
            - {name: medium, model: gpt-4o, max_score: 0.60}
            - {name: large, model: o3}              # the last tier takes every higher score
          allow_tier_header: true                   # x-gateway-tier: large pins a tier

Each request gets a score in [0, 1] from cheap features of its body (no model is called): how
long the prompt is, how deep the conversation, code and math in it, tools and structured output,
words that ask for reasoning, and the caller's hint (`x-gateway-complexity: low | medium | high`
or a number in [0, 1]); where configured, an embedding classifier's reading is blended in
(classifier.py). It goes to the first tier whose `max_score` is at least the score, then
through that group's own fallbacks, then up the higher tiers. The weights are fixed and small in
number on purpose: they are read, argued with and evaluated (loadtests/eval_complexity.py), not
learned.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from gateway.config.routing import ComplexityOptions, Tier
from gateway.core.errors import InvalidRequest

HEADER_TIER = "x-gateway-tier"
HEADER_HINT = "x-gateway-complexity"
HINTS = {"low": 0.0, "medium": 0.5, "high": 1.0}
# The text read per request is capped: scoring stays cheap whatever the prompt's size.
MAX_TEXT_CHARS = 20_000

_CODE = re.compile(
    r"```|\bdef |\bclass\b|\bfunction\b|\breturn\b|=>|#include|\bimport |\bSELECT\b|\bstruct\b|\bimpl\b|"
    r"Traceback|Exception|\berror:|\bstack trace\b|\bsegfault\b|\bregex\b|\bSQL\b|\bAPI\b|\bcompile|\brefactor|"
    r"\bPython\b|\bJavaScript\b|\bTypeScript\b|\bJava\b|\bRust\b|\bGo\b|\bC\+\+|\bbash\b|\bshell\b|\bDockerfile\b|"
    r"\bYAML\b|\bHTML\b|\bReact\b|\bKubernetes\b|\bPostgreSQL\b|\bquery\b|\bthread|\basync|\bmutex\b|\block\b",
    re.IGNORECASE,
)
_MATH = re.compile(
    r"\\frac|\\sum|\\int|\$[^$]+\$|\bprove\b|\bproof\b|\btheorem\b|\blemma\b|\bintegral\b|\bderivative\b|"
    r"\bprobability\b|\bequation\b|\bmatrix\b|\beigen|\bpolynomial\b|\bmodulo\b|\bconverge|\binduction\b|"
    r"\d+\s*[\^*/]\s*\d+|\bcombinatori|\bexpected value\b|\bvariance\b|\brecurrence\b|\bestimator\b|\binteger\b",
    re.IGNORECASE,
)
_REASONING = re.compile(
    r"\bstep by step\b|\bwhy\b|\banaly[sz]e\b|\banalysis\b|\bcompare\b|\btrade-?offs?\b|\bdesign\b|\barchitect|"
    r"\boptimi[sz]e\b|\bdebug|\bstrategy\b|\bevaluate\b|\bcritique\b|\bcritically\b|\bjustify\b|\breason|"
    r"\bderive\b|\bedge cases?\b|\bimplications?\b|\bpros and cons\b|\bin depth\b|\bthorough|\bmulti-?step\b|"
    r"\bprove\b|\bfailure modes?\b|\bconsisten|\bconcurren|\brace condition\b|\bidempoten|\bscal(e|ing|ability)\b|"
    r"\bdistributed\b|\bconstraints?\b|\brisks?\b|\broot cause\b|\bmigrat|\bcomplexity\b|\boptimal\b|\binfer\b",
    re.IGNORECASE,
)
# An open-ended task (as opposed to a lookup): writing, explaining, building something.
_TASK = re.compile(
    r"\b(write|explain|summari[sz]e|create|draft|describe|implement|build|convert|rewrite|plan|suggest|"
    r"give feedback|translate this paragraph|generate)\b",
    re.IGNORECASE,
)
_SIMPLE = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|ok|yes|no)\b|\btranslate '|\bspell\b|\bsynonym\b|\bcapital of\b|"
    r"\bwhat time\b|\bdefine\b|\bfix (the )?typo|\brephrase\b|\bone word\b|\bone-line\b|\bone sentence\b|"
    r"\bwhat('s| is) the\b|\bwho (wrote|painted|was)\b|\bhow many\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Features:
    chars: int
    turns: int
    code: int
    math: int
    reasoning: int
    task: bool
    simple: int
    tools: bool
    structured: bool


@dataclass(frozen=True, slots=True)
class Choice:
    tier: Tier
    score: float
    pinned: bool = False


def features(body: dict[str, Any]) -> Features:
    messages = body.get("messages")
    texts: list[str] = []
    turns = 0
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            if message.get("role") in ("user", "assistant"):
                turns += 1
            _collect(message.get("content"), texts)
    else:
        _collect(body.get("prompt") or body.get("input"), texts)
        turns = 1
    text = "\n".join(texts)[:MAX_TEXT_CHARS]
    last = texts[-1][:MAX_TEXT_CHARS] if texts else ""
    response_format = body.get("response_format")
    structured = isinstance(response_format, dict) and response_format.get("type") == "json_schema"
    return Features(
        chars=len(text), turns=turns, code=len(_CODE.findall(text)), math=len(_MATH.findall(text)),
        reasoning=len(_REASONING.findall(text)), task=_TASK.search(last) is not None,
        simple=len(_SIMPLE.findall(last)),
        tools=bool(body.get("tools") or body.get("functions")), structured=structured,
    )


def score_of(f: Features) -> float:
    """Each feature adds its share; the sum is clipped to [0, 1]. The shares are the reviewable part."""
    # Length: nothing up to 40 characters, +0.06 per doubling after, at most 0.25.
    length = min(0.25, 0.06 * max(0.0, math.log2(max(f.chars, 1) / 40)))
    depth = min(0.15, 0.03 * max(0, f.turns - 2))
    code = min(0.3, 0.08 * f.code)
    maths = min(0.35, 0.12 * f.math)
    reasoning = min(0.4, 0.1 * f.reasoning)
    extras = 0.1 * f.task + 0.1 * f.tools + 0.1 * f.structured
    simple = 0.1 * min(f.simple, 2)
    return max(0.0, min(1.0, length + depth + code + maths + reasoning + extras - simple))


def score(body: dict[str, Any], hint: str | None = None, reading: float | None = None, weight: float = 0.0) -> float:
    """The features' score, blended with the embedding classifier's `reading` (classifier.py) at `weight`."""
    value = score_of(features(body))
    if reading is not None:
        value = (1 - weight) * value + weight * reading
    if hint is not None:
        # The caller knows its task: its hint counts as much as everything else together.
        value = (value + _hint(hint)) / 2
    return round(value, 4)


def choose(options: ComplexityOptions, model: str, body: dict[str, Any], headers: Any,
           reading: float | None = None) -> Choice:
    """The tier for this request: pinned by header where allowed, else the first whose max_score covers it."""
    pinned = headers.get(HEADER_TIER)
    weight = options.classifier.weight if options.classifier is not None else 0.0
    value = score(body, headers.get(HEADER_HINT), reading, weight)
    if pinned is not None:
        if not options.allow_tier_header:
            raise InvalidRequest(f"The model `{model}` does not allow choosing its tier by header.", param=HEADER_TIER)
        for tier in options.tiers:
            if tier.name == pinned:
                return Choice(tier, value, pinned=True)
        names = ", ".join(t.name for t in options.tiers)
        raise InvalidRequest(f"The model `{model}` has no tier {pinned!r} (its tiers: {names}).", param=HEADER_TIER)
    return Choice(tier_for(options, value), value)


def tier_for(options: ComplexityOptions, value: float) -> Tier:
    for tier in options.tiers:
        if tier.max_score is None or value <= tier.max_score:
            return tier
    return options.tiers[-1]


def _hint(raw: str) -> float:
    text = raw.strip().lower()
    if text in HINTS:
        return HINTS[text]
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise InvalidRequest(f"The {HEADER_HINT} header takes low, medium, high or a number from 0 to 1.",
                             param=HEADER_HINT)
    return value


def _collect(content: Any, into: list[str]) -> None:
    if isinstance(content, str):
        into.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                into.append(part["text"])
            elif isinstance(part, str):
                into.append(part)
