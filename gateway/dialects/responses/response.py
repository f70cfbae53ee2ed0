"""Neutral chat completion -> Responses `response` object. Pure.

The object's envelope (id, status, the request's echo, usage) is built here for the unary answer
and for the stream's lifecycle events alike. Item ids are derived from the response id, so an
answer is a function of its input. A chat message's reasoning text (`reasoning_content`, as vLLM
and DeepSeek send it, or `reasoning`) becomes a reasoning item with a summary: the part of
reasoning that Responses clients show.
"""

from __future__ import annotations

import secrets
from typing import Any

from gateway.dialects.responses.request import ResponsesRequest

JSON = dict[str, Any]

# finish_reason -> (status, incomplete reason)
FINISH = {
    "stop": ("completed", None),
    "tool_calls": ("completed", None),
    "function_call": ("completed", None),
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
}
REASONING_FIELDS = ("reasoning_content", "reasoning")


def new_response_id() -> str:
    return "resp_" + secrets.token_hex(24)


def item_id(response_id: str, prefix: str, index: int) -> str:
    """The id of the `index`th output item: `msg_`, `fc_` or `rs_` and the response's own token."""
    return f"{prefix}_{response_id.removeprefix('resp_')}{index:04x}"


def finish_status(finish_reason: Any) -> tuple[str, str | None]:
    return FINISH.get(finish_reason, ("completed", None)) if isinstance(finish_reason, str) else ("completed", None)


def responses_usage(usage: Any) -> JSON | None:
    """Chat usage in the Responses API's words; cached and reasoning tokens kept."""
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    reasoning = _int(completion_details.get("reasoning_tokens")) if isinstance(completion_details, dict) else 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": _int(usage.get("total_tokens")) or prompt + completion,
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def envelope(request: ResponsesRequest, response_id: str, created_at: int, *, status: str = "in_progress",
             output: list[JSON] | None = None, usage: JSON | None = None,
             incomplete_reason: str | None = None, error: JSON | None = None) -> JSON:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        # The model as the client named it: the name it routes by here, whatever the upstream calls it.
        "model": request.model,
        "output": output or [],
        "usage": usage,
        **request.echo,
    }


def reasoning_item(item_id: str, text: str, status: str = "completed") -> JSON:
    return {"type": "reasoning", "id": item_id, "summary": [{"type": "summary_text", "text": text}],
            "status": status}


def message_item(item_id: str, parts: list[JSON], status: str = "completed") -> JSON:
    return {"type": "message", "id": item_id, "role": "assistant", "status": status, "content": parts}


def text_part(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(text: str) -> JSON:
    return {"type": "refusal", "refusal": text}


def function_call_item(request: ResponsesRequest, item_id: str, call_id: str, name: str, arguments: str,
                       status: str = "completed") -> JSON:
    item: JSON = {"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
                  "arguments": arguments, "status": status}
    if name in request.namespaced:
        item["namespace"], item["name"] = request.namespaced[name]
    return item


def to_response(completion: JSON, request: ResponsesRequest, response_id: str, created_at: int) -> JSON:
    choices = completion.get("choices")
    choice: JSON = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message: JSON = choice["message"] if isinstance(choice.get("message"), dict) else {}
    status, reason = finish_status(choice.get("finish_reason"))
    item_status = "incomplete" if status == "incomplete" else "completed"
    output: list[JSON] = []
    reasoning = next((message[f] for f in REASONING_FIELDS if isinstance(message.get(f), str) and message[f]), None)
    if reasoning:
        output.append(reasoning_item(item_id(response_id, "rs", len(output)), reasoning))
    parts: list[JSON] = []
    if isinstance(message.get("content"), str) and message["content"]:
        parts.append(text_part(message["content"]))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append(refusal_part(message["refusal"]))
    if parts:
        output.append(message_item(item_id(response_id, "msg", len(output)), parts, item_status))
    calls = message.get("tool_calls")
    for k, call in enumerate(calls if isinstance(calls, list) else ()):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            call_id = call.get("id") if isinstance(call.get("id"), str) and call["id"] else f"call_{k}"
            arguments = function.get("arguments")
            output.append(function_call_item(
                request, item_id(response_id, "fc", len(output)), call_id, str(function.get("name") or ""),
                arguments if isinstance(arguments, str) else "{}", item_status))
    return envelope(request, response_id, created_at, status=status, output=output,
                    usage=responses_usage(completion.get("usage")), incomplete_reason=reason)
