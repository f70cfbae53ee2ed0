"""OpenAI chat request -> Gemini generateContent request. Pure."""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

from gateway.core.errors import InvalidRequest
from gateway.providers.convert import (
    TurnShape,
    extras,
    function_tools,
    image_url,
    max_output_tokens,
    parse_data_url,
    reject_logprobs,
    stop_sequences,
    text_of,
    to_turns,
    tool_calls_of,
)

PROVIDER = "gemini"
# Gemini wants its thought signatures back on the function calls of later turns; OpenAI's format
# has no place for them, so they ride in the tool call id, which clients echo verbatim.
SIGNATURE_SEPARATOR = "__thought__"

# The keys of Gemini's `Schema` (an OpenAPI subset); JSON Schema keys outside it are refused
# there ("Unknown name"), so they are left out of function parameters. [unverified: the list
# follows the public API reference as recalled; newer models also take `parametersJsonSchema`.]
_SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
})

Part = dict[str, Any]


def to_gemini(body: dict[str, Any]) -> dict[str, Any]:
    reject_logprobs(body, PROVIDER)
    system, contents = _contents(body["messages"])
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": system}]}
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    tools = function_tools(body)
    if tools:
        out["tools"] = [{"functionDeclarations": [_declaration(*tool) for tool in tools]}]
    tool_config = _tool_config(body.get("tool_choice"))
    if tool_config is not None:
        out["toolConfig"] = tool_config
    for key, value in extras(body).items():
        out.setdefault(key, value)
    return out


def _contents(messages: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    # Gemini's function responses name the function; OpenAI's tool messages only give the call id.
    names: dict[str, str] = {}
    shape = TurnShape(
        provider="gemini",
        pieces="parts",
        assistant="model",
        user_piece=_user_part,
        assistant_pieces=lambda message, i: _model_parts(message, i, names),
        tool_piece=lambda message, i: _function_response(message, i, names),
        is_empty=lambda part: "text" in part and not part["text"],
    )
    return to_turns(messages, shape)


def _user_part(part: dict[str, Any], param: str) -> Part:
    kind = part["type"]
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise InvalidRequest(f"Invalid text at '{param}'.", param=param)
        return {"text": part["text"]}
    if kind == "image_url":
        url = image_url(part, param)
        data = parse_data_url(url, param)
        if data is not None:
            return {"inlineData": {"mimeType": data[0], "data": data[1]}}
        # [unverified] Gemini reads fileData URIs it can fetch (Files API, Cloud Storage, public URLs).
        guessed = mimetypes.guess_type(url.partition("?")[0])[0] or "image/jpeg"
        return {"fileData": {"mimeType": guessed, "fileUri": url}}
    raise InvalidRequest(f"Content part type {kind!r} is not supported by this model's provider (gemini).",
                         param=param)


def _model_parts(message: dict[str, Any], i: int, names: dict[str, str]) -> list[Part]:
    parts: list[Part] = []
    text = text_of(message.get("content"), f"messages[{i}].content")
    if text:
        parts.append({"text": text})
    for call_id, name, arguments in tool_calls_of(message, i):
        names[call_id] = name
        part: Part = {"functionCall": {"name": name, "args": arguments}}
        _, separator, signature = call_id.partition(SIGNATURE_SEPARATOR)
        if separator and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _function_response(message: dict[str, Any], i: int, names: dict[str, str]) -> Part:
    call_id = message.get("tool_call_id")
    name = names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        raise InvalidRequest(f"'messages[{i}].tool_call_id' does not name a tool call of an earlier message.",
                             param=f"messages[{i}].tool_call_id")
    text = text_of(message.get("content"), f"messages[{i}].content")
    try:
        parsed = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        parsed = None
    # `response` must be an object; a tool that answered with plain text gets it wrapped.
    response = parsed if isinstance(parsed, dict) else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for source, target in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed"),
                           ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
        if body.get(source) is not None:
            config[target] = body[source]
    max_tokens = max_output_tokens(body)
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = stop_sequences(body)
    if stop:
        config["stopSequences"] = stop
    n = body.get("n")
    if n is not None and n != 1:
        config["candidateCount"] = n
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind in ("json_object", "json_schema"):
            config["responseMimeType"] = "application/json"
        schema = response_format.get("json_schema")
        if kind == "json_schema" and isinstance(schema, dict) and isinstance(schema.get("schema"), dict):
            # [unverified] `responseJsonSchema` takes JSON Schema as is (newer than `responseSchema`).
            config["responseJsonSchema"] = schema["schema"]
    return config


def _declaration(name: str, description: str | None, parameters: dict[str, Any] | None) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": name}
    if description:
        declaration["description"] = description
    if parameters and parameters.get("properties"):
        declaration["parameters"] = gemini_schema(parameters)
    return declaration


def gemini_schema(schema: Any) -> Any:
    """A JSON Schema reduced to the keys Gemini's Schema knows, recursively."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: gemini_schema(sub) for name, sub in value.items()}
        elif key in ("items",):
            out[key] = gemini_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [gemini_schema(sub) for sub in value]
        else:
            out[key] = value
    return out


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"functionCallingConfig": {"mode": "AUTO"}}
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict) \
            and isinstance(choice["function"].get("name"), str):
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}}
    raise InvalidRequest("Invalid value for 'tool_choice'.", param="tool_choice")
