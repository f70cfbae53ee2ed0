"""OpenAI chat request -> Bedrock Converse request. Pure.

    {"messages": [{"role", "content": [{"text"} | {"image"} | {"toolUse"} | {"toolResult"}]}],
     "system": [{"text"}], "inferenceConfig": {"maxTokens", "temperature", "topP", "stopSequences"},
     "toolConfig": {"tools": [{"toolSpec"}], "toolChoice"}, "additionalModelRequestFields": {...}}

Fields that are not OpenAI's go to `additionalModelRequestFields` (the model's own, e.g.
Anthropic's `top_k`), except Converse's own top-level ones (`guardrailConfig`,
`performanceConfig`, `requestMetadata`...), which stay at the top.
"""

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

PROVIDER = "bedrock"
CONVERSE_FIELDS = frozenset({"guardrailConfig", "performanceConfig", "requestMetadata", "promptVariables",
                             "additionalModelResponseFieldPaths", "additionalModelRequestFields"})
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}

Block = dict[str, Any]


def to_converse(body: dict[str, Any], default_max_tokens: int | None = None) -> dict[str, Any]:
    single_choice(body, PROVIDER)
    reject_logprobs(body, PROVIDER)
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise InvalidRequest("This model's provider (bedrock) has no JSON mode in Converse; describe the format "
                             "in the prompt or use a tool.", param="response_format", code="unsupported_parameter")
    system, messages = to_turns(body["messages"], _SHAPE)
    out: dict[str, Any] = {"messages": messages}
    if system:
        out["system"] = [{"text": system}]
    config: dict[str, Any] = {}
    max_tokens = max_output_tokens(body) or default_max_tokens
    if max_tokens:
        config["maxTokens"] = max_tokens
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP")):
        value = body.get(ours)
        if isinstance(value, int | float) and not isinstance(value, bool):
            # Converse takes 0-1 for every model family; OpenAI's temperature goes to 2.
            config[theirs] = min(max(float(value), 0.0), 1.0)
    stop = stop_sequences(body)
    if stop:
        config["stopSequences"] = stop
    if config:
        out["inferenceConfig"] = config
    tools = function_tools(body)
    if tools:
        tool_config: dict[str, Any] = {"tools": [_tool(*tool) for tool in tools]}
        choice = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            tool_config["toolChoice"] = choice
        out["toolConfig"] = tool_config
    additional: dict[str, Any] = {}
    for key, value in extras(body).items():
        if key in ("model", "stream", "stream_options", "n"):
            continue
        if key in CONVERSE_FIELDS:
            out[key] = value
        else:
            additional[key] = value
    if additional:
        out["additionalModelRequestFields"] = {**additional, **(out.get("additionalModelRequestFields") or {})}
    return out


def _user_block(part: dict[str, Any], param: str) -> Block:
    kind = part["type"]
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise InvalidRequest(f"Invalid text at '{param}'.", param=param)
        return {"text": part["text"]}
    if kind == "image_url":
        data = parse_data_url(image_url(part, param), param)
        if data is None or data[0] not in IMAGE_FORMATS:
            raise InvalidRequest(f"Bedrock takes images as data URLs (png, jpeg, gif, webp) at '{param}'.",
                                 param=param)
        # Converse's JSON carries the image bytes base64-encoded, as the data URL already has them.
        return {"image": {"format": IMAGE_FORMATS[data[0]], "source": {"bytes": data[1]}}}
    raise InvalidRequest(f"Content part type {kind!r} is not supported by this model's provider (bedrock).",
                         param=param)


def _assistant_blocks(message: dict[str, Any], i: int) -> list[Block]:
    blocks: list[Block] = []
    text = text_of(message.get("content"), f"messages[{i}].content")
    if text:
        blocks.append({"text": text})
    for call_id, name, arguments in tool_calls_of(message, i):
        blocks.append({"toolUse": {"toolUseId": call_id, "name": name, "input": arguments}})
    return blocks


def _tool_result(message: dict[str, Any], i: int) -> Block:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"Missing 'messages[{i}].tool_call_id'.", param=f"messages[{i}].tool_call_id")
    text = text_of(message.get("content"), f"messages[{i}].content")
    return {"toolResult": {"toolUseId": call_id, "content": [{"text": text}] if text else []}}


def _tool(name: str, description: str | None, parameters: dict[str, Any] | None) -> Block:
    spec: dict[str, Any] = {"name": name,
                            "inputSchema": {"json": parameters or {"type": "object", "properties": {}}}}
    if description:
        spec["description"] = description
    return {"toolSpec": spec}


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None or choice in ("auto", "none"):
        # Converse has no "none": the tools stay offered (earlier tool turns need them) and the
        # model decides, as with "auto".
        return {"auto": {}} if choice == "auto" else None
    if choice == "required":
        return {"any": {}}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict) \
            and isinstance(choice["function"].get("name"), str):
        return {"tool": {"name": choice["function"]["name"]}}
    raise InvalidRequest("Invalid value for 'tool_choice'.", param="tool_choice")


_SHAPE = TurnShape(
    provider=PROVIDER,
    pieces="content",
    assistant="assistant",
    user_piece=_user_block,
    assistant_pieces=_assistant_blocks,
    tool_piece=_tool_result,
    is_empty=lambda block: "text" in block and not block["text"],
)
