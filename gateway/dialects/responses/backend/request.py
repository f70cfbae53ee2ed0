"""Neutral chat request -> Responses request, for a deployment that speaks only the Responses API. Pure.

Chat fields the Responses API has no word for are refused when dropping them would change the
answer the client expects (`stop`, `n` > 1, `logit_bias`, `logprobs`, audio), and dropped when
they are sampling hints only (`seed`, the penalties). Nothing is stored upstream (`store: false`):
the chat client sends the whole conversation every time.
"""

from __future__ import annotations

from typing import Any

from gateway.core.errors import InvalidRequest
from gateway.providers.convert import OPENAI_CHAT_FIELDS

JSON = dict[str, Any]

COPIED = ("temperature", "top_p", "user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention",
          "service_tier", "parallel_tool_calls", "metadata")
REFUSED = {
    "stop": "stop sequences",
    "logit_bias": "logit_bias",
    "logprobs": "logprobs",
    "audio": "audio output",
    "prediction": "predicted outputs",
    "functions": "the legacy functions field (use tools)",
}


def to_responses(chat: JSON, model: str) -> JSON:
    """The Responses request for `chat`, sent to `model` (the deployment's model name)."""
    for name, what in REFUSED.items():
        if chat.get(name) not in (None, False, [], {}):
            raise InvalidRequest(f"'{name}': {what} cannot be used with this model: it is served through the "
                                 f"Responses API, which has no such option.", param=name)
    if chat.get("n") not in (None, 1):
        raise InvalidRequest("'n': this model is served through the Responses API, which returns one choice.",
                             param="n")
    messages = chat.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages': a non-empty array is required.", param="messages")
    out: JSON = {key: value for key, value in chat.items() if key not in OPENAI_CHAT_FIELDS}
    out.update({"model": model, "input": _input(messages), "store": False})
    for name in COPIED:
        if chat.get(name) is not None:
            out[name] = chat[name]
    limit = chat.get("max_completion_tokens") or chat.get("max_tokens")
    if limit is not None:
        out["max_output_tokens"] = limit
    if chat.get("stream") is True:
        out["stream"] = True
    if chat.get("tools"):
        out["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(chat["tools"])]
    if chat.get("tool_choice") is not None:
        out["tool_choice"] = _tool_choice(chat["tool_choice"])
    text = text_config(chat.get("response_format"), chat.get("verbosity"))
    if text:
        out["text"] = text
    if chat.get("reasoning_effort") is not None:
        out["reasoning"] = {"effort": chat["reasoning_effort"]}
    return out


def _input(messages: list[Any]) -> list[JSON]:
    items: list[JSON] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"Invalid type for '{where}': expected an object.", param=where)
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer", "user"):
            items.append({"type": "message", "role": role, "content": _content(content, f"{where}.content")})
        elif role == "assistant":
            text = _text_of(content, f"{where}.content")
            if text:
                items.append({"type": "message", "role": "assistant", "content": text})
            for j, call in enumerate(message.get("tool_calls") or ()):
                items.append(_function_call(call, f"{where}.tool_calls[{j}]"))
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise InvalidRequest(f"Missing '{where}.tool_call_id'.", param=f"{where}.tool_call_id")
            items.append({"type": "function_call_output", "call_id": call_id,
                          "output": _text_of(content, f"{where}.content")})
        else:
            raise InvalidRequest(f"Invalid value for '{where}.role'.", param=f"{where}.role")
    return items


def _content(content: Any, where: str) -> str | list[JSON]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid type for '{where}': expected a string or an array of parts.", param=where)
    return [_part(part, f"{where}[{j}]") for j, part in enumerate(content)]


def _part(part: Any, where: str) -> JSON:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "input_text", "text": part["text"]}
    if kind == "image_url" and isinstance(part.get("image_url"), dict) and isinstance(part["image_url"].get("url"),
                                                                                     str):
        image = part["image_url"]
        return {"type": "input_image", "image_url": image["url"], "detail": image.get("detail") or "auto"}
    if kind == "file" and isinstance(part.get("file"), dict):
        file = {k: v for k, v in part["file"].items() if k in ("file_data", "file_id", "filename")}
        return {"type": "input_file", **file}
    raise InvalidRequest(f"Invalid value for '{where}': only text, image_url and file parts can be sent to this "
                         f"model.", param=where)


def _text_of(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise InvalidRequest(f"Invalid value for '{where}': expected text.", param=where)


def _function_call(call: Any, where: str) -> JSON:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(call.get("id"), str) \
            or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"Invalid '{where}': a tool call needs an id and a function name.", param=where)
    arguments = function.get("arguments")
    return {"type": "function_call", "call_id": call["id"], "name": function["name"],
            "arguments": arguments if isinstance(arguments, str) else "{}"}


def _tool(tool: Any, where: str) -> JSON:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"Invalid '{where}': only function tools with a name are supported.", param=where)
    out: JSON = {"type": "function", "name": function["name"],
                 "parameters": function.get("parameters") or {"type": "object", "properties": {}},
                 # Chat's default; the Responses API's is true.
                 "strict": function.get("strict") is True}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"type": "function", "name": function["name"]}
    raise InvalidRequest("Invalid value for 'tool_choice'.", param="tool_choice")


def text_config(response_format: Any, verbosity: Any) -> JSON:
    """Chat's `response_format` (and `verbosity`) as the Responses API's `text`."""
    text: JSON = {}
    if isinstance(verbosity, str):
        text["verbosity"] = verbosity
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        text["format"] = {"type": "json_object"}
    elif kind == "json_schema" and isinstance(response_format.get("json_schema"), dict):
        text["format"] = {"type": "json_schema", **response_format["json_schema"]}
    elif response_format is not None and kind != "text":
        raise InvalidRequest("Invalid value for 'response_format'.", param="response_format")
    return text
