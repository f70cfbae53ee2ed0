"""Anthropic Messages request -> OpenAI chat request, for `POST /v1/messages`. Pure.

Fields that are Anthropic's but have no OpenAI meaning (`top_k`, `thinking`, …) are dropped;
fields that are not Anthropic's at all are the client's (`extra_body`) and pass through to
the OpenAI body, where the serving adapter's own rules apply to them.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.errors import InvalidRequest
from gateway.edge.body import load_json

ANTHROPIC_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_p",
    "top_k", "tools", "tool_choice", "thinking", "service_tier", "container", "mcp_servers", "context_management",
    "output_format", "output_config", "inference_geo",
})

Part = dict[str, Any]


def to_openai(raw: bytes, *, counting: bool = False) -> dict[str, Any]:
    """`counting`: a `count_tokens` body, a Messages request without `max_tokens` (nor a stream)."""
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    body = load_json(raw, "The request body is not valid JSON.")
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required", param="model")
    max_tokens = body.get("max_tokens", 1 if counting else None)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest("max_tokens: a positive integer is required", param="max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: a non-empty list is required", param="messages")
    stream = False if counting else body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream: a boolean is required", param="stream")

    out: dict[str, Any] = {key: value for key, value in body.items() if key not in ANTHROPIC_FIELDS}
    out.update({"model": model, "max_tokens": max_tokens, "messages": _messages(body.get("system"), messages)})
    if stream:
        # Anthropic's stream always ends with usage; ask the proxy for OpenAI's usage chunk.
        out.update({"stream": True, "stream_options": {"include_usage": True}})
    for field in ("temperature", "top_p"):
        if body.get(field) is not None:
            out[field] = body[field]
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("stop_sequences: a list of strings is required", param="stop_sequences")
        if stop:
            out["stop"] = stop
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    tools = body.get("tools")
    if tools:
        out["tools"] = _tools(tools)
    choice = body.get("tool_choice")
    if choice is not None:
        out.update(_tool_choice(choice))
        if not tools:
            out.pop("parallel_tool_calls", None)
    return out


def _text(block: dict[str, Any], param: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{param}.text: a string is required", param=param)
    return text


def _blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list) and all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in content):
        return content
    raise InvalidRequest(f"{param}: a string or a list of content blocks is required", param=param)


def _system(system: Any, param: str = "system") -> str:
    if system is None:
        return ""
    return "\n\n".join(_text(block, f"{param}.{j}") for j, block in enumerate(_blocks(system, param))
                       if block["type"] == "text")


def _messages(system: Any, messages: list[Any]) -> list[dict[str, Any]]:
    """`system` entries inside `messages` (Claude Code sends one at `messages[1]` for model names it
    does not know, beta `mid-conversation-system-2026-04-07`) keep the meaning of where they stand.
    Before the model's first turn nothing has been answered yet, so they are part of the system
    prompt: folded into it after the top-level `system`, in the order they came (backends that take
    a system message only first, Anthropic, Gemini and most open-model chat templates, get one).
    After an assistant turn they apply from there on: they stay a `system` message at that place
    in the neutral request, and each provider adapter writes that as its backend allows."""
    texts = [_system(system)]
    turns: list[dict[str, Any]] = []
    answered = False
    for i, message in enumerate(messages):
        param = f"messages.{i}"
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":
            text = _system(message.get("content"), f"{param}.content")
            if not answered:
                texts.append(text)
            elif text:
                turns.append({"role": "system", "content": text})
            continue
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"{param}.role: 'user', 'assistant' or 'system' is required", param=f"{param}.role")
        blocks = _blocks(message.get("content"), f"{param}.content")
        if role == "user":
            turns.extend(_user(blocks, f"{param}.content"))
        else:
            turns.append(_assistant(blocks, f"{param}.content"))
            answered = True
    if not turns:
        raise InvalidRequest("messages: at least one user or assistant message is required", param="messages")
    text = "\n\n".join(t for t in texts if t)
    return [{"role": "system", "content": text}, *turns] if text else turns


def _user(blocks: list[dict[str, Any]], param: str) -> list[dict[str, Any]]:
    """Tool results become OpenAI tool messages, which must come first, right after the assistant turn."""
    results: list[dict[str, Any]] = []
    parts: list[Part] = []
    for j, block in enumerate(blocks):
        where = f"{param}.{j}"
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, where)})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, where)}})
        elif kind == "tool_result":
            results.append(_tool_result(block, where))
        else:
            raise InvalidRequest(f"{where}.type: {kind!r} blocks are not supported by this gateway",
                                 param=f"{where}.type")
    if not parts:
        return results
    content: str | list[Part] = parts[0]["text"] if len(parts) == 1 and parts[0]["type"] == "text" else parts
    return [*results, {"role": "user", "content": content}]


def _image_url(block: dict[str, Any], param: str) -> str:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64" \
            and isinstance(source.get("media_type"), str) and isinstance(source.get("data"), str):
        return f"data:{source['media_type']};base64,{source['data']}"
    if isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        return source["url"]
    raise InvalidRequest(f"{param}.source: a base64 or url image source is required", param=f"{param}.source")


def _tool_result(block: dict[str, Any], param: str) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{param}.tool_use_id: Field required", param=f"{param}.tool_use_id")
    content = block.get("content")
    texts = [] if content is None else [
        _text(part, f"{param}.content.{k}") if part["type"] == "text" else _unsupported(part, f"{param}.content.{k}")
        for k, part in enumerate(_blocks(content, f"{param}.content"))
    ]
    text = "".join(texts)
    if block.get("is_error") is True:
        # OpenAI's tool message has no error flag; the model still has to learn the call failed.
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _unsupported(block: dict[str, Any], param: str) -> str:
    raise InvalidRequest(f"{param}.type: {block['type']!r} blocks are not supported in tool results here",
                         param=f"{param}.type")


def _assistant(blocks: list[dict[str, Any]], param: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        where = f"{param}.{j}"
        if block["type"] == "text":
            texts.append(_text(block, where))
        elif block["type"] == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise InvalidRequest(f"{where}: tool_use blocks need an id and a name", param=where)
            arguments = block.get("input") if isinstance(block.get("input"), dict) else {}
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"], "arguments": orjson.dumps(arguments).decode()}})
        elif block["type"] in ("thinking", "redacted_thinking"):
            continue  # OpenAI's messages cannot carry them back
        else:
            raise InvalidRequest(f"{where}.type: {block['type']!r} blocks are not supported by this gateway",
                                 param=f"{where}.type")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("tools: a list is required", param="tools")
    out = []
    for i, tool in enumerate(tools):
        client_tool = isinstance(tool, dict) and tool.get("type", "custom") == "custom"
        if not client_tool or not isinstance(tool.get("name"), str):
            # Server tools (web search, code execution, …) run at Anthropic; no other backend has them.
            raise InvalidRequest(f"tools.{i}: only client tools with a name and an input_schema are supported",
                                 param=f"tools.{i}")
        function: dict[str, Any] = {"name": tool["name"],
                                    "parameters": tool.get("input_schema") or {"type": "object", "properties": {}}}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        mapped: Any = "auto"
    elif kind == "any":
        mapped = "required"
    elif kind == "none":
        return {"tool_choice": "none"}
    elif kind == "tool" and isinstance(choice.get("name"), str):
        mapped = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise InvalidRequest("tool_choice: type must be auto, any, tool or none", param="tool_choice")
    out: dict[str, Any] = {"tool_choice": mapped}
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out
