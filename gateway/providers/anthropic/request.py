"""OpenAI chat request -> Anthropic Messages request. Pure."""

from __future__ import annotations

from typing import Any

from gateway.core.errors import InvalidRequest
from gateway.providers.convert import (
    TurnShape,
    extras,
    function_tools,
    image_url,
    max_output_tokens,
    parse_data_url,
    reject_logprobs,
    single_choice,
    stop_sequences,
    text_of,
    to_turns,
    tool_calls_of,
)

PROVIDER = "anthropic"
# Used when neither the request nor the deployment (`max_tokens_default`) gives `max_tokens`,
# which Anthropic requires.
DEFAULT_MAX_TOKENS = 4096

Block = dict[str, Any]
# OpenAI's JSON mode (`response_format: json_object`, any JSON object) has no schema, and Anthropic's
# structured outputs take only closed objects (`additionalProperties: false`), so a permissive schema
# cannot go there. What Anthropic's tool-use docs give for JSON instead: one tool whose input is the
# answer, its schema any object, and `tool_choice` forcing it. The reply reads that input back as the
# message's text (response.py, stream.py), so the client sees JSON mode's answer.
JSON_TOOL = "json_answer"
_JSON_TOOL_DEFINITION = {"name": JSON_TOOL, "input_schema": {"type": "object"},
                         "description": "Give your whole answer as this tool's input: one JSON object."}


def to_anthropic(body: dict[str, Any], model: str, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    single_choice(body, PROVIDER)
    reject_logprobs(body, PROVIDER)
    output_format = _output_format(body)
    system, messages = _messages(body["messages"])
    out: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": max_output_tokens(body) or default_max_tokens,
    }
    if system:
        out["system"] = system
    stop = stop_sequences(body)
    if stop:
        out["stop_sequences"] = stop
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        # OpenAI's range is 0-2, Anthropic's 0-1; Anthropic's own OpenAI layer caps it the same way.
        out["temperature"] = min(max(float(temperature), 0.0), 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    tools = function_tools(body)
    if tools:
        out["tools"] = [_tool(name, description, parameters) for name, description, parameters in tools]
    tool_choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"), bool(tools))
    if tool_choice is not None:
        out["tool_choice"] = tool_choice
    if json_mode(body):
        if tools or body.get("thinking") is not None:
            raise InvalidRequest(
                "This model's provider (anthropic) serves a json_object response_format through a forced tool "
                "call, which cannot go with tools or thinking; send a json_schema response_format instead.",
                param="response_format", code="unsupported_parameter")
        out["tools"] = [_JSON_TOOL_DEFINITION]
        out["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
    if output_format is not None:
        out["output_config"] = {"format": output_format}
    if body.get("stream") is True:
        out["stream"] = True
    for key, value in extras(body).items():
        out.setdefault(key, value)
    return out


def json_mode(body: dict[str, Any]) -> bool:
    """The request asks for OpenAI's JSON mode: any JSON object, no schema."""
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") == "json_object"


def _output_format(body: dict[str, Any]) -> dict[str, Any] | None:
    """A `json_schema` response format as Anthropic's structured outputs (`output_config.format`);
    `json_object` is a forced tool (see JSON_TOOL)."""
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    json_schema = response_format.get("json_schema") if isinstance(response_format, dict) else None
    if kind == "json_schema" and isinstance(json_schema, dict) and isinstance(json_schema.get("schema"), dict):
        output_format = {"type": "json_schema", "schema": json_schema["schema"]}
    elif kind not in (None, "text", "json_object"):
        raise InvalidRequest(
            f"This model's provider (anthropic) has no response_format of type {kind!r}; send a json_schema "
            "or json_object response_format.",
            param="response_format",
            code="unsupported_parameter",
        )
    else:
        output_format = None
    modalities = body.get("modalities")
    if body.get("audio") is not None or (isinstance(modalities, list) and "audio" in modalities):
        raise InvalidRequest("This model's provider (anthropic) has no audio output.", param="modalities",
                             code="unsupported_parameter")
    return output_format


def _messages(messages: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """Anthropic's `system` and its alternating user/assistant turns."""
    return to_turns(messages, _SHAPE)


def _text_block(text: str, part: dict[str, Any]) -> Block:
    block: Block = {"type": "text", "text": text}
    if isinstance(part.get("cache_control"), dict):  # prompt caching hints pass through
        block["cache_control"] = part["cache_control"]
    return block


def _user_block(part: dict[str, Any], param: str) -> Block:
    kind = part["type"]
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise InvalidRequest(f"Invalid text at '{param}'.", param=param)
        return _text_block(part["text"], part)
    if kind == "image_url":
        url = image_url(part, param)
        data = parse_data_url(url, param)
        source = {"type": "url", "url": url} if data is None else {
            "type": "base64", "media_type": data[0], "data": data[1]}
        return {"type": "image", "source": source}
    raise InvalidRequest(f"Content part type {kind!r} is not supported by this model's provider (anthropic).",
                         param=param)


def _assistant_blocks(message: dict[str, Any], i: int) -> list[Block]:
    blocks: list[Block] = []
    text = text_of(message.get("content"), f"messages[{i}].content")
    if text:
        blocks.append({"type": "text", "text": text})
    for call_id, name, arguments in tool_calls_of(message, i):
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return blocks


def _tool_result(message: dict[str, Any], i: int) -> Block:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"Missing 'messages[{i}].tool_call_id'.", param=f"messages[{i}].tool_call_id")
    block: Block = {"type": "tool_result", "tool_use_id": call_id}
    text = text_of(message.get("content"), f"messages[{i}].content")
    if text:
        block["content"] = text
    return block


def _tool(name: str, description: str | None, parameters: dict[str, Any] | None) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name, "input_schema": parameters or {"type": "object", "properties": {}}}
    if description:
        tool["description"] = description
    return tool


def _tool_choice(choice: Any, parallel: Any, has_tools: bool) -> dict[str, Any] | None:
    if choice is None:
        mapped: dict[str, Any] | None = {"type": "auto"} if has_tools and parallel is False else None
    elif choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict) \
            and isinstance(choice["function"].get("name"), str):
        mapped = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise InvalidRequest("Invalid value for 'tool_choice'.", param="tool_choice")
    if mapped is not None and parallel is False:
        mapped["disable_parallel_tool_use"] = True
    return mapped


_SHAPE = TurnShape(
    provider="anthropic",
    pieces="content",
    assistant="assistant",
    user_piece=_user_block,
    assistant_pieces=_assistant_blocks,
    tool_piece=_tool_result,
    is_empty=lambda block: block["type"] == "text" and not block["text"],
)
