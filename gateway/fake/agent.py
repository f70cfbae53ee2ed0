"""The fake's scripted model for agents (the `agent` directive) and its structured output. Pure.

With `agent` on, a request that offers tools and has no tool result after the last user message
gets a call of one tool: the first offered tool whose name the user's last words mention, else the
first tool. Its arguments follow the tool's JSON schema; the first required string takes the first
quoted span of the user's words (`'echo hi'`, "...", or `...`), so a test decides what Codex or
Claude Code runs. A request that has the tool's result gets the usual echo, now of that result.

A request for JSON output (a schema or a JSON object) gets a JSON value that fits the schema
instead of the echo, agent or not.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"|`([^`]+)`")
FILLER = "fake"


def quoted(text: str) -> str | None:
    match = QUOTED.search(text)
    return next(group for group in match.groups() if group) if match else None


def pick(tools: list[tuple[str, Any]], ask: str) -> tuple[str, Any]:
    """(name, parameters schema) of the tool to call: the first one `ask` names, else the first."""
    for name, schema in tools:
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", ask):
            return name, schema
    return tools[0]


def arguments(schema: Any, ask: str) -> str:
    """The call's arguments as a JSON string: every required property, the first string from `ask`."""
    value = fit(schema, quoted(ask))
    return orjson.dumps(value if isinstance(value, dict) else {}).decode()


def fit(schema: Any, text: str | None = None, depth: int = 0) -> Any:
    """A value that the JSON schema accepts; `text`, if any, goes into the first string it needs."""
    holder = [text]
    return _fit(schema, holder, depth)


def _fit(schema: Any, text: list[str | None], depth: int) -> Any:
    if not isinstance(schema, dict) or depth > 8:
        return {}
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for combiner in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(combiner), list) and schema[combiner]:
            return _fit(schema[combiner][0], text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), dict)):
        properties = given if isinstance(given := schema.get("properties"), dict) else {}
        required = listed if isinstance(listed := schema.get("required"), list) else []
        # Required properties only: an optional one filled with a stand-in (a working directory, a
        # shell) would change what the client does with the call.
        return {name: _fit(properties[name], text, depth + 1) for name in properties if name in required}
    if kind == "array":
        return [_fit(schema.get("items"), text, depth + 1)] if schema.get("minItems", 0) else []
    if kind == "string":
        value, text[0] = text[0] or FILLER, None
        return value
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return max(1.0, float(schema.get("minimum", 1.0)))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return FILLER


def json_schema_of(response_format: Any) -> Any:
    """For a chat `response_format` asking for JSON: the schema ({} for a JSON object); else None."""
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_object":
        return {}
    inner = response_format.get("json_schema")
    if response_format.get("type") == "json_schema" and isinstance(inner, dict):
        return inner.get("schema") if isinstance(inner.get("schema"), dict) else {}
    return None


def json_reply(schema: Any) -> str:
    value = fit(schema) if schema else {"answer": FILLER}
    return orjson.dumps(value).decode()
