"""The fake's `POST /v1/responses`: OpenAI's Responses API, unary and streamed, answered natively.

Written from the API reference, not from the gateway's translators, so that the tests of those
are checked against an independent reading. The reply is the core fake's echo (of the last user
message, or of the last tool output), JSON when `text.format` asks for it, and with the `agent` or
`tool_call` directives a `function_call` item. Responses made with `store` (the default) are kept
in memory, newest 1000, so that `previous_response_id` works: the earlier turns count as input.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

from gateway.fake import agent
from gateway.fake.behaviour import Behaviour
from gateway.fake.replies import JSON, Stream, WireError, fragments, reply_pieces, require_model

REMEMBERED = 1000
TOOL_CHOICES = ("auto", "none", "required")


def _event(name: str, sequence: int, **fields: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, "sequence_number": sequence,
                                                                    **fields}) + b"\n\n"


def _items(req: JSON) -> list[JSON]:
    value = req.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise WireError(400, "Invalid 'input': expected a string or an array of input items.", param="input")
    return [item if "type" in item else {"type": "message", **item} for item in value]


def _text(item: JSON) -> str:
    """The words an item says: a message's text parts, a tool output's text."""
    content = item.get("output") if item.get("type") == "function_call_output" else item.get("content")
    if isinstance(content, str):
        return content
    return " ".join(part.get("text") or part.get("refusal") or "" for part in content or ()
                    if isinstance(part, dict) and part.get("type") in ("input_text", "output_text", "refusal"))


def _functions(req: JSON) -> list[tuple[str, str | None, Any]]:
    """(name, namespace, parameters) of every function tool offered, namespaced ones included."""
    out: list[tuple[str, str | None, Any]] = []
    for tool in req.get("tools") or ():
        if not isinstance(tool, dict):
            raise WireError(400, "Invalid 'tools': expected an array of objects.", param="tools")
        if tool.get("type") == "function" and isinstance(tool.get("name"), str):
            out.append((tool["name"], None, tool.get("parameters")))
        elif tool.get("type") == "namespace" and isinstance(tool.get("tools"), list):
            out.extend((inner["name"], tool.get("name"), inner.get("parameters")) for inner in tool["tools"]
                       if isinstance(inner, dict) and isinstance(inner.get("name"), str))
    return out


class ResponsesFake:
    def __init__(self) -> None:
        self._memory: OrderedDict[str, list[JSON]] = OrderedDict()

    def create(self, req: JSON, b: Behaviour, seq: int, created: int) -> JSON | Stream:
        model = require_model(req)
        items = _items(req)
        previous = req.get("previous_response_id")
        if previous is not None:
            if previous not in self._memory:
                raise WireError(400, f"Previous response with id '{previous}' not found.",
                                param="previous_response_id")
            items = self._memory[previous] + items
        if not items:
            raise WireError(400, "Invalid 'input': at least one item is required.", param="input")
        response_id = f"resp_fake{seq:010d}"
        output, pieces, arguments = self._output(req, items, b, response_id)
        status, reason = "completed", None
        limit = req.get("max_output_tokens")
        if isinstance(limit, int) and not arguments and len(pieces) > limit:
            pieces, status, reason = pieces[:limit], "incomplete", "max_output_tokens"
        if output["type"] == "message":
            output["content"][0]["text"] = "".join(pieces)
            output["status"] = "incomplete" if status == "incomplete" else "completed"
        input_words = sum(len(_text(item).split()) for item in items)
        usage = {"input_tokens": input_words, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                 "output_tokens": len(pieces) + len(arguments), "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": input_words + len(pieces) + len(arguments)}
        response = self._response(req, model, response_id, created, status, reason, [output],
                                  usage if b.usage else None)
        if req.get("store") is not False:
            self._memory[response_id] = [*items, output]
            while len(self._memory) > REMEMBERED:
                self._memory.popitem(last=False)
        if req.get("stream") is True:
            return _stream(response, output, pieces, arguments)
        return response

    def _output(self, req: JSON, items: list[JSON], b: Behaviour, response_id: str) -> tuple[JSON, list[str],
                                                                                              list[str]]:
        """The output item, the text pieces of a message, the argument fragments of a call."""
        token = response_id.removeprefix("resp_")
        call = self._call(req, items, b)
        if call is not None:
            name, namespace, arguments = call
            item: JSON = {"type": "function_call", "id": f"fc_{token}", "call_id": f"call_{token}", "name": name,
                          "arguments": arguments, "status": "completed"}
            if namespace:
                item["namespace"] = namespace
            return item, [], fragments(arguments)
        fmt = req.get("text", {}).get("format") if isinstance(req.get("text"), dict) else None
        schema = fmt.get("schema", {}) if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else (
            {} if isinstance(fmt, dict) and fmt.get("type") == "json_object" else None)
        if schema is not None and b.content is None:
            pieces = fragments(agent.json_reply(schema))
        else:
            pieces = reply_pieces(_text(items[-1]).split(), b)
        message = {"type": "message", "id": f"msg_{token}", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": "", "annotations": [], "logprobs": []}]}
        return message, pieces, []

    def _call(self, req: JSON, items: list[JSON], b: Behaviour) -> tuple[str, str | None, str] | None:
        functions = _functions(req)
        if b.tool_call is not None:
            namespace = next((ns for name, ns, _ in functions if name == b.tool_call["name"]), None)
            return b.tool_call["name"], namespace, b.tool_call["arguments"]
        last = items[-1]
        if not b.agent or not functions or req.get("tool_choice") == "none" \
                or last.get("type") != "message" or last.get("role") != "user":
            return None
        content = last.get("content")
        texts = [content] if isinstance(content, str) else [
            p["text"] for p in content or () if isinstance(p, dict) and isinstance(p.get("text"), str)]
        ask = texts[-1] if texts else ""
        name, schema = agent.pick([(name, schema) for name, _, schema in functions], ask)
        namespace = next(ns for n, ns, _ in functions if n == name)
        return name, namespace, agent.arguments(schema, ask)

    @staticmethod
    def _response(req: JSON, model: str, response_id: str, created: int, status: str, reason: str | None,
                  output: list[JSON], usage: JSON | None) -> JSON:
        choice = req.get("tool_choice")
        return {
            "id": response_id, "object": "response", "created_at": created, "status": status, "error": None,
            "incomplete_details": {"reason": reason} if reason else None, "instructions": req.get("instructions"),
            "max_output_tokens": req.get("max_output_tokens"), "model": model, "output": output,
            "parallel_tool_calls": req.get("parallel_tool_calls", True),
            "previous_response_id": req.get("previous_response_id"), "store": req.get("store", True),
            "temperature": req.get("temperature", 1.0), "top_p": req.get("top_p", 1.0),
            "tool_choice": choice if choice in TOOL_CHOICES or isinstance(choice, dict) else "auto",
            "tools": req.get("tools") or [], "text": req.get("text") or {"format": {"type": "text"}},
            "reasoning": req.get("reasoning") or {"effort": None, "summary": None},
            "truncation": req.get("truncation", "disabled"), "metadata": req.get("metadata") or {},
            "usage": usage, "user": req.get("user"),
        }


def _stream(response: JSON, output: JSON, pieces: list[str], arguments: list[str]) -> Stream:
    """The documented events; `error_after` ends with `error` and `response.failed`."""
    started = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    head: list[tuple[str, JSON]] = [("response.created", {"response": started}),
                                    ("response.in_progress", {"response": started})]
    where = {"item_id": output["id"], "output_index": 0}
    tail: list[tuple[str, JSON]] = []
    if output["type"] == "function_call":
        head.append(("response.output_item.added", {"output_index": 0, "item": {
            **output, "arguments": "", "status": "in_progress"}}))
        deltas = [("response.function_call_arguments.delta", {**where, "delta": part}) for part in arguments]
        tail.append(("response.function_call_arguments.done", {**where, "arguments": output["arguments"]}))
    else:
        text = output["content"][0]["text"]
        head.append(("response.output_item.added", {"output_index": 0, "item": {
            **output, "status": "in_progress", "content": []}}))
        where = {**where, "content_index": 0}
        head.append(("response.content_part.added", {**where, "part": {**output["content"][0], "text": ""}}))
        deltas = [("response.output_text.delta", {**where, "delta": piece, "logprobs": []}) for piece in pieces]
        tail.append(("response.output_text.done", {**where, "text": text, "logprobs": []}))
        tail.append(("response.content_part.done", {**where, "part": output["content"][0]}))
    tail.append(("response.output_item.done", {"output_index": 0, "item": output}))
    tail.append((f"response.{response['status']}", {"response": response}))

    def failed(after: int) -> bytes:
        sequence = len(head) + after
        error = {"code": "server_error", "message": f"The fake upstream failed after {after} content events."}
        return _event("error", sequence, **error, param=None) + _event(
            "response.failed", sequence + 1, response={**started, "status": "failed", "error": error})

    events = [_event(name, len(head) + i, **fields) for i, (name, fields) in enumerate(deltas)]
    return Stream(
        head=b"".join(_event(name, i, **fields) for i, (name, fields) in enumerate(head)),
        events=events,
        tail=b"".join(_event(name, len(head) + len(deltas) + i, **fields) for i, (name, fields) in enumerate(tail)),
        on_error=failed,
    )
