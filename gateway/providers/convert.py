"""Small pieces the translators share: reading OpenAI messages safely, extras, upstream JSON.

Everything here raises `InvalidRequest` naming the offending field, never a bare KeyError, so
malformed input from a client becomes a 400 and not a 500.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.config.file import Deployment
from gateway.core.errors import InvalidRequest, UpstreamError

# Every field of OpenAI's chat request. A translator maps some, rejects some and drops the
# rest; fields outside this set are not OpenAI's, so they are the client's provider-specific
# options (sent with the SDK's `extra_body`) and go to the provider unchanged.
OPENAI_CHAT_FIELDS = frozenset({
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "n", "tools",
    "tool_choice", "parallel_tool_calls", "response_format", "user", "safety_identifier", "prompt_cache_key",
    "prompt_cache_retention", "seed", "temperature", "top_p", "stop", "presence_penalty", "frequency_penalty",
    "logit_bias", "logprobs", "top_logprobs", "metadata", "store", "service_tier", "reasoning_effort",
    "verbosity", "prediction", "modalities", "audio", "web_search_options", "functions", "function_call",
})


def extras(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a request that are not OpenAI's."""
    return {key: value for key, value in body.items() if key not in OPENAI_CHAT_FIELDS}


def message_at(messages: list[Any], i: int) -> tuple[dict[str, Any], str]:
    message = messages[i]
    if not isinstance(message, dict):
        raise InvalidRequest(f"Invalid value for 'messages[{i}]': expected an object.", param=f"messages[{i}]")
    role = message.get("role")
    if not isinstance(role, str):
        raise InvalidRequest(f"Missing or invalid 'messages[{i}].role'.", param=f"messages[{i}].role")
    return message, role


Piece = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TurnShape:
    """How a provider writes a conversation as alternating turns (Anthropic's messages, Gemini's
    contents): what it calls the pieces of a turn and the assistant, how each piece is built from
    OpenAI's, and which pieces say nothing (the provider refuses empty ones)."""

    provider: str
    pieces: str  # the turn's field holding its pieces: "content", "parts"
    assistant: str  # the assistant's role: "assistant", "model"
    user_piece: Callable[[dict[str, Any], str], Piece]  # (content part, param)
    assistant_pieces: Callable[[dict[str, Any], int], list[Piece]]  # (message, index)
    tool_piece: Callable[[dict[str, Any], int], Piece]  # a tool result, sent as the user's
    is_empty: Callable[[Piece], bool]


def to_turns(messages: list[Any], shape: TurnShape) -> tuple[str, list[dict[str, Any]]]:
    """The system text (system and developer messages, joined as the providers' OpenAI layers do)
    and the turns; consecutive turns of one role merge, since both providers require alternation.

    A system message after the model's first turn applies from there on, and moving it into the
    system prompt would make it precede answers it came after: it goes into the next user turn
    instead, after that turn's tool results (which must come first), marked as a
    `<system-reminder>` (the tag Claude Code itself uses for instructions inside a turn)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    reminders: list[Piece] = []  # late system messages waiting for the next user turn
    for i in range(len(messages)):
        message, role = message_at(messages, i)
        param = f"messages[{i}].content"
        if role in ("system", "developer"):
            text = text_of(message.get("content"), param)
            if text and any(turn["role"] == shape.assistant for turn in turns):
                reminders.append(shape.user_piece(_reminder(text), param))
            elif text:
                system.append(text)
            continue
        if role == "user":
            parts = content_parts(message.get("content"), param)
            turn_role, pieces = "user", [shape.user_piece(part, f"{param}[{j}]") for j, part in enumerate(parts)]
            pieces, reminders = [*reminders, *pieces], []
        elif role == "assistant":
            if reminders:  # no user turn came between: the reminders are one of their own
                _append(turns, "user", reminders, shape)
                reminders = []
            turn_role, pieces = shape.assistant, shape.assistant_pieces(message, i)
        elif role == "tool":
            turn_role, pieces = "user", [shape.tool_piece(message, i)]
        else:
            raise InvalidRequest(f"Role {role!r} is not supported by this model's provider ({shape.provider}).",
                                 param=f"messages[{i}].role")  # fmt: skip
        _append(turns, turn_role, [p for p in pieces if not shape.is_empty(p)], shape)
    if reminders:
        _append(turns, "user", reminders, shape)
    if not turns:
        raise InvalidRequest("The request has no user or assistant message with content.", param="messages")
    return "\n\n".join(system), turns


def _reminder(text: str) -> dict[str, Any]:
    return {"type": "text", "text": f"<system-reminder>\n{text}\n</system-reminder>"}


def _append(turns: list[dict[str, Any]], role: str, pieces: list[Piece], shape: TurnShape) -> None:
    if not pieces:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][shape.pieces].extend(pieces)
    else:
        turns.append({"role": role, shape.pieces: pieces})


def content_parts(content: Any, param: str) -> list[dict[str, Any]]:
    """A message's content as a list of parts: a string is one text part; null is none."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise InvalidRequest(f"Invalid content part at '{param}[{j}]'.", param=f"{param}[{j}]")
        return content
    raise InvalidRequest(f"Invalid value for '{param}': expected a string or an array of parts.", param=param)


def text_of(content: Any, param: str) -> str:
    """The text of a content that may only hold text (system, tool and assistant messages)."""
    texts = []
    for j, part in enumerate(content_parts(content, param)):
        if part["type"] in ("text", "refusal"):
            text = part.get(part["type"])
            if not isinstance(text, str):
                raise InvalidRequest(f"Invalid text at '{param}[{j}]'.", param=f"{param}[{j}]")
            texts.append(text)
        else:
            raise InvalidRequest(f"Content part type {part['type']!r} is not allowed here.", param=f"{param}[{j}]")
    return "".join(texts)


def image_url(part: dict[str, Any], param: str) -> str:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"Missing image URL at '{param}'.", param=param)
    return url


def parse_data_url(url: str, param: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:` URL; None for any other URL."""
    if not url.startswith("data:"):
        return None
    header, comma, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not comma or encoding != "base64" or not media_type:
        raise InvalidRequest(f"Invalid data URL at '{param}': expected data:<type>;base64,<data>.", param=param)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"Invalid base64 data at '{param}'.", param=param) from None
    return media_type, data


def tool_calls_of(message: dict[str, Any], i: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, name, arguments object) of an assistant message's tool calls."""
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise InvalidRequest(f"Invalid 'messages[{i}].tool_calls'.", param=f"messages[{i}].tool_calls")
    result = []
    for j, call in enumerate(calls):
        param = f"messages[{i}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"Invalid tool call at '{param}'.", param=param)
        call_id = call.get("id")
        result.append((call_id if isinstance(call_id, str) else "", function["name"],
                       parse_arguments(function.get("arguments"), f"{param}.function.arguments")))
    return result


def parse_arguments(arguments: Any, param: str) -> dict[str, Any]:
    """OpenAI sends tool arguments as a JSON string; the other providers want the object."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidRequest(f"'{param}' must be a JSON object encoded as a string.", param=param)
    return parsed


def function_tools(body: dict[str, Any]) -> list[tuple[str, str | None, dict[str, Any] | None]]:
    """(name, description, parameters) of the request's tools; only function tools exist elsewhere."""
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("Invalid value for 'tools': expected an array.", param="tools")
    result = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise InvalidRequest(f"Only function tools are supported ('tools[{i}]').", param=f"tools[{i}]")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"Missing function name at 'tools[{i}].function.name'.", param=f"tools[{i}]")
        description = function.get("description")
        parameters = function.get("parameters")
        result.append((
            function["name"],
            description if isinstance(description, str) else None,
            parameters if isinstance(parameters, dict) else None,
        ))
    return result


def max_output_tokens(body: dict[str, Any]) -> int | None:
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequest(f"Invalid value for '{field}': expected a positive integer.", param=field)
        return value
    return None


def stop_sequences(body: dict[str, Any]) -> list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return stop
    raise InvalidRequest("Invalid value for 'stop': expected a string or an array of strings.", param="stop")


def single_choice(body: dict[str, Any], provider: str) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest(f"This model's provider ({provider}) answers one choice per request; 'n' must be 1.",
                             param="n", code="unsupported_parameter")


def reject_logprobs(body: dict[str, Any], provider: str) -> None:
    if body.get("logprobs") or body.get("top_logprobs"):
        raise InvalidRequest(f"This model's provider ({provider}) does not return logprobs.",
                             param="logprobs", code="unsupported_parameter")


def load_upstream_json(body: bytes, deployment: Deployment) -> dict[str, Any]:
    """An upstream's JSON answer; anything else is the upstream's fault (502), not the client's."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamError(f"deployment {deployment.id} returned a body that is not a JSON object", status=502,
                            type="server_error", code="bad_upstream_response")
    return parsed
