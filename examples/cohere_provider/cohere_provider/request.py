"""OpenAI chat request -> Cohere v2 chat request. Pure.

Cohere's v2 messages are close to OpenAI's: the same roles, tool calls with JSON-string
arguments, tool results by `tool_call_id`. The sampling fields are renamed (`p`, `k`,
`stop_sequences`). Fields the gateway does not know pass through for Cohere to judge.
"""

from __future__ import annotations

from typing import Any

from gateway.core.errors import InvalidRequest
from gateway.providers.convert import (
    content_parts,
    extras,
    function_tools,
    max_output_tokens,
    message_at,
    reject_logprobs,
    single_choice,
    stop_sequences,
    text_of,
)

PROVIDER = "cohere"
_RENAMED = {"temperature": "temperature", "top_p": "p", "seed": "seed", "frequency_penalty": "frequency_penalty",
            "presence_penalty": "presence_penalty"}


def to_cohere(body: dict[str, Any], model: str) -> dict[str, Any]:
    single_choice(body, PROVIDER)
    reject_logprobs(body, PROVIDER)
    out: dict[str, Any] = {"model": model, "messages": [_message(body["messages"], i)
                                                        for i in range(len(body["messages"]))]}
    for source, target in _RENAMED.items():
        if body.get(source) is not None:
            out[target] = body[source]
    max_tokens = max_output_tokens(body)
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    stop = stop_sequences(body)
    if stop:
        out["stop_sequences"] = stop
    tools = function_tools(body)
    if tools:
        out["tools"] = [{"type": "function", "function": {
            "name": name, "description": description or "",
            "parameters": parameters or {"type": "object", "properties": {}}}}
            for name, description, parameters in tools]
    choice = body.get("tool_choice")
    if choice == "required":
        out["tool_choice"] = "REQUIRED"
    elif choice == "none":
        out["tool_choice"] = "NONE"
    elif choice not in (None, "auto"):
        raise InvalidRequest("Cohere can require a tool call or forbid one, not name the tool.", param="tool_choice",
                             code="unsupported_parameter")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
        schema = (response_format.get("json_schema") or {}).get("schema")
        out["response_format"] = {"type": "json_object", **({"json_schema": schema} if schema else {})}
    if body.get("stream") is True:
        out["stream"] = True
    for key, value in extras(body).items():
        out.setdefault(key, value)
    return out


def _message(messages: list[Any], i: int) -> dict[str, Any]:
    message, role = message_at(messages, i)
    param = f"messages[{i}].content"
    if role in ("system", "developer"):
        return {"role": "system", "content": text_of(message.get("content"), param)}
    if role == "user":
        return {"role": "user", "content": [_user_part(p, f"{param}[{j}]")
                                            for j, p in enumerate(content_parts(message.get("content"), param))]}
    if role == "assistant":
        out: dict[str, Any] = {"role": "assistant"}
        text = text_of(message.get("content"), param)
        if text:
            out["content"] = text
        calls = message.get("tool_calls")
        if calls:
            if not isinstance(calls, list):
                raise InvalidRequest(f"Invalid 'messages[{i}].tool_calls'.", param=f"messages[{i}].tool_calls")
            out["tool_calls"] = [{"id": c.get("id"), "type": "function",
                                  "function": {"name": str(c["function"].get("name") or ""),
                                               "arguments": str(c["function"].get("arguments") or "{}")}}
                                 for c in calls if isinstance(c, dict) and isinstance(c.get("function"), dict)]
        return out
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            raise InvalidRequest(f"Missing 'messages[{i}].tool_call_id'.", param=f"messages[{i}].tool_call_id")
        return {"role": "tool", "tool_call_id": call_id, "content": text_of(message.get("content"), param)}
    raise InvalidRequest(f"Role {role!r} is not supported by this model's provider (cohere).",
                         param=f"messages[{i}].role")


def _user_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    if part["type"] == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if part["type"] == "image_url" and isinstance(part.get("image_url"), dict):
        return {"type": "image_url", "image_url": {"url": part["image_url"].get("url")}}
    raise InvalidRequest(f"Content part type {part['type']!r} is not supported by cohere.", param=param)
