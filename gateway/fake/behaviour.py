"""How the fake upstream misbehaves: server-wide defaults plus per-request directives.

A request overrides any field through a `"fake": {...}` object in its JSON body or an
`x-fake-<field>` header (underscores written as dashes); the header wins over the body.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

HEADER_PREFIX = "x-fake-"
MAX_EMBEDDING_DIMS = 65536


@dataclass(frozen=True, slots=True)
class Behaviour:
    latency_ms: float = 0
    ttft_ms: float = 0
    tokens: int = 16
    inter_token_ms: float = 0
    embedding_dims: int = 8
    status: int = 200
    retry_after: float | None = None
    drop_after: int | None = None
    error_after: int | None = None
    usage: bool = True
    content: str | None = None
    tool_call: dict[str, str] | None = None
    # Prompts longer than this many words get the provider fakes' context-length error (Claude Code's
    # system prompt alone is about 6000).
    context_words: int = 4096
    # Act as a model driving an agent: call an offered tool, then answer its result (gateway/fake/agent.py).
    agent: bool = False


DEFAULT_BEHAVIOUR = Behaviour()


class DirectiveError(ValueError):
    """A malformed per-request directive; the request is answered with a 400."""


def _millis(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise DirectiveError("expected a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DirectiveError("expected a number")
    if not math.isfinite(value) or value < 0:
        raise DirectiveError("expected a finite number >= 0")
    return float(value)


def _count(value: Any) -> int:
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise DirectiveError("expected an integer") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DirectiveError("expected an integer >= 0")
    return value


def _dims(value: Any) -> int:
    dims = _count(value)
    if not 1 <= dims <= MAX_EMBEDDING_DIMS:
        raise DirectiveError(f"expected an integer between 1 and {MAX_EMBEDDING_DIMS}")
    return dims


def _status(value: Any) -> int:
    status = _count(value)
    # 1xx/2xx-without-body/3xx answers would not be OpenAI-shaped, so only 200 or an error status.
    if status != 200 and not 400 <= status <= 599:
        raise DirectiveError("expected 200 or an error status 400-599")
    return status


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no"):
        return False
    raise DirectiveError("expected a boolean")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise DirectiveError("expected a string")
    return value


def _tool_call(value: Any) -> dict[str, str]:
    if isinstance(value, str):  # the header form carries the object as JSON
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise DirectiveError("expected a JSON object") from None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise DirectiveError('expected {"name": str, "arguments": str}')
    arguments = value.get("arguments", "{}")
    if not isinstance(arguments, str):
        raise DirectiveError("'arguments' must be a JSON string, as OpenAI sends it")
    return {"name": value["name"], "arguments": arguments}


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse_optional(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return parse(value)

    return parse_optional


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "latency_ms": _millis,
    "ttft_ms": _millis,
    "tokens": _count,
    "inter_token_ms": _millis,
    "embedding_dims": _dims,
    "status": _status,
    "retry_after": _optional(_millis),
    "drop_after": _optional(_count),
    "error_after": _optional(_count),
    "usage": _flag,
    "content": _optional(_text),
    "tool_call": _optional(_tool_call),
    "agent": _flag,
    "context_words": _count,
}


def _parse(name: str, value: Any) -> Any:
    parse = _PARSERS.get(name)
    if parse is None:
        raise DirectiveError(f"unknown fake directive {name!r}")
    try:
        return parse(value)
    except DirectiveError as exc:
        raise DirectiveError(f"fake directive {name!r}: {exc}") from None


def resolve(defaults: Behaviour, body_directives: Any, headers: Mapping[str, str]) -> Behaviour:
    """The behaviour for one request: defaults, then the body's `fake` object, then x-fake-* headers."""
    overrides: dict[str, Any] = {}
    if body_directives is not None:
        if not isinstance(body_directives, dict):
            raise DirectiveError("'fake' must be an object")
        for name, value in body_directives.items():
            overrides[name] = _parse(name, value)
    for header, value in headers.items():
        if header.startswith(HEADER_PREFIX):
            name = header[len(HEADER_PREFIX) :].replace("-", "_")
            overrides[name] = _parse(name, value)
    # The common case has no directives: keep the shared defaults object, no copy.
    return dataclasses.replace(defaults, **overrides) if overrides else defaults


def validate(behaviour: Behaviour) -> Behaviour:
    """Check server-wide defaults with the same rules as directives (the CLI builds them by hand)."""
    for field in dataclasses.fields(behaviour):
        _parse(field.name, getattr(behaviour, field.name))
    return behaviour
