"""Rendering a template version: `{{name}}` placeholders in message contents, nothing else.

There is no expression language on purpose: a template is data an admin wrote and a client fills
in, so the only operation is replacing a declared name by a client's string. A variable the
template does not declare, or one it declares and the request does not give, is a 400 naming it.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.core.errors import InvalidRequest

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
ROLES = frozenset({"system", "developer", "user", "assistant"})
MAX_VALUE_CHARS = 100_000


def placeholders(messages: list[dict[str, Any]]) -> set[str]:
    return {name for m in messages for name in PLACEHOLDER.findall(str(m.get("content", "")))}


def check_messages(messages: Any) -> list[dict[str, str]]:
    """A template's messages: a non-empty list of {role, content} with text content."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list of {role, content}.", param="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise InvalidRequest(f"'messages[{i}]' must be {{role, content}} with a role of "
                                 f"{', '.join(sorted(ROLES))} and text content.", param=f"messages[{i}]")
        if set(m) - {"role", "content"}:
            raise InvalidRequest(f"'messages[{i}]' takes only role and content.", param=f"messages[{i}]")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def render(messages: list[dict[str, str]], declared: list[str], values: Any) -> list[dict[str, str]]:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise InvalidRequest("'prompt.variables' must be an object of names to strings.", param="prompt.variables")
    for name in values:
        if name not in declared:
            raise InvalidRequest(f"The template declares no variable '{name}' (it declares: "
                                 f"{', '.join(declared) or 'none'}).", param=f"prompt.variables.{name}")
    text: dict[str, str] = {}
    for name in declared:
        if name not in values:
            raise InvalidRequest(f"Missing template variable '{name}'.", param=f"prompt.variables.{name}")
        value = values[name]
        if isinstance(value, dict) and value.get("type") == "input_text":
            value = value.get("text")  # the Responses API's form of a text variable
        if isinstance(value, bool) or not isinstance(value, str | int | float) or len(str(value)) > MAX_VALUE_CHARS:
            raise InvalidRequest(f"Template variable '{name}' must be a string (or a number, or an input_text "
                                 f"part) of at most {MAX_VALUE_CHARS} characters: templates render text only.",
                                 param=f"prompt.variables.{name}")
        text[name] = str(value)
    # One pass per message: a value that itself looks like {{x}} is left as the client wrote it.
    return [{"role": m["role"], "content": PLACEHOLDER.sub(lambda match: text[match.group(1)], m["content"])}
            for m in messages]
