"""Responses input items -> chat messages. Pure.

Messages keep their order. `developer` becomes `system` (every backend knows that role);
consecutive `function_call` items become one assistant message with parallel tool calls, joined
to the assistant text right before them; `function_call_output` items become tool messages.
Reasoning items are dropped: chat messages cannot carry them back, and their encrypted content
means something to OpenAI alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.core.errors import InvalidRequest

JSON = dict[str, Any]
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
IMAGE_DETAILS = frozenset({"auto", "low", "high"})


def item_type(item: JSON) -> Any:
    # An "easy" message has no type: {"role": "user", "content": "..."}.
    return item.get("type", "message" if "role" in item else None)


def to_messages(items: list[Any], flat_names: Mapping[tuple[str, str], str], param: str = "input") -> list[JSON]:
    """`flat_names` maps (namespace, name) of namespaced tools to the function name chat sees."""
    out: list[JSON] = []
    for i, item in enumerate(items):
        where = f"{param}[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"Invalid type for '{where}': expected an object.", param=where)
        kind = item_type(item)
        handler = _ITEMS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise InvalidRequest(f"Invalid value for '{where}.type': {kind!r} items are not supported by this "
                                 f"gateway for models served through Chat Completions.", param=f"{where}.type")
        handler(item, where, out, flat_names)
    return out


def _string(item: JSON, field: str, where: str) -> str:
    value = item.get(field)
    if not isinstance(value, str):
        raise InvalidRequest(f"Missing or invalid '{where}.{field}': expected a string.", param=f"{where}.{field}")
    return value


def _message(item: JSON, where: str, out: list[JSON], flat_names: Mapping[tuple[str, str], str]) -> None:
    role = item.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidRequest(f"Invalid value for '{where}.role': expected one of 'user', 'assistant', 'system' or "
                             f"'developer'.", param=f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        out.append({"role": ROLES[role], "content": content})
        return
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid type for '{where}.content': expected a string or a list of content parts.",
                             param=f"{where}.content")
    parts = [_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    if role == "user":
        out.append({"role": "user", "content": _user_content(parts)})
        return
    texts = []
    for j, part in enumerate(parts):
        if part["type"] != "text":
            raise InvalidRequest(f"Invalid value for '{where}.content[{j}]': only text parts are allowed in "
                                 f"{role} messages.", param=f"{where}.content[{j}]")
        texts.append(part["text"])
    out.append({"role": ROLES[role], "content": "".join(texts) if role == "assistant" else "\n\n".join(texts)})


def _user_content(parts: list[JSON]) -> str | list[JSON]:
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _part(part: Any, where: str) -> JSON:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": _string(part, "text", where)}
    if kind == "refusal":
        return {"type": "text", "text": _string(part, "refusal", where)}
    if kind == "input_image":
        return _image(part, where)
    if kind == "input_file":
        return _file(part, where)
    raise InvalidRequest(f"Invalid value for '{where}.type': expected 'input_text', 'input_image' or 'input_file'.",
                         param=f"{where}.type")


def _image(part: JSON, where: str) -> JSON:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        # A file_id names an upload at OpenAI; nothing else can read it.
        raise InvalidRequest(f"Missing '{where}.image_url': this gateway needs the image as a URL or a data URL.",
                             param=f"{where}.image_url")
    image: JSON = {"url": url}
    if isinstance(part.get("detail"), str) and part["detail"] in IMAGE_DETAILS:
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _file(part: JSON, where: str) -> JSON:
    file: JSON = {}
    if isinstance(part.get("file_data"), str):
        file["file_data"] = part["file_data"]
    elif isinstance(part.get("file_id"), str):
        file["file_id"] = part["file_id"]
    else:
        # Chat Completions has no file URLs: the bytes must come with the request.
        raise InvalidRequest(f"Missing '{where}.file_data': this gateway needs the file's content (file_data) "
                             f"or an OpenAI file_id.", param=f"{where}.file_data")
    if isinstance(part.get("filename"), str):
        file["filename"] = part["filename"]
    return {"type": "file", "file": file}


def _function_call(item: JSON, where: str, out: list[JSON], flat_names: Mapping[tuple[str, str], str]) -> None:
    name = _string(item, "name", where)
    namespace = item.get("namespace")
    if isinstance(namespace, str) and namespace:
        name = flat_names.get((namespace, name), name)
    arguments = item.get("arguments", "")
    if not isinstance(arguments, str):
        raise InvalidRequest(f"Invalid type for '{where}.arguments': expected a JSON string.",
                             param=f"{where}.arguments")
    call = {"id": _string(item, "call_id", where), "type": "function",
            "function": {"name": name, "arguments": arguments}}
    last = out[-1] if out else None
    if last is not None and last["role"] == "assistant" and isinstance(last.get("content"), str | None):
        last.setdefault("tool_calls", []).append(call)
        if last.get("content") == "":
            last["content"] = None
    else:
        out.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _function_call_output(item: JSON, where: str, out: list[JSON], flat_names: Mapping[tuple[str, str], str]) -> None:
    call_id = _string(item, "call_id", where)
    output = item.get("output")
    if isinstance(output, list):
        texts = []
        for j, part in enumerate(output):
            converted = _part(part, f"{where}.output[{j}]")
            if converted["type"] != "text":
                # A chat tool message holds text only.
                raise InvalidRequest(f"Invalid value for '{where}.output[{j}]': only text is supported in tool "
                                     f"outputs for models served through Chat Completions.",
                                     param=f"{where}.output[{j}]")
            texts.append(converted["text"])
        output = "".join(texts)
    if not isinstance(output, str):
        raise InvalidRequest(f"Invalid type for '{where}.output': expected a string or a list of content parts.",
                             param=f"{where}.output")
    out.append({"role": "tool", "tool_call_id": call_id, "content": output})


def _reasoning(item: JSON, where: str, out: list[JSON], flat_names: Mapping[tuple[str, str], str]) -> None:
    return None


_ITEMS: dict[str, Callable[[JSON, str, list[JSON], Mapping[tuple[str, str], str]], None]] = {
    "message": _message,
    "function_call": _function_call,
    "function_call_output": _function_call_output,
    "reasoning": _reasoning,
}
