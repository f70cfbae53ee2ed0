"""A fake of Anthropic's Messages API: `POST /v1/messages`, `x-api-key`, `anthropic-version`.

It checks requests the way the real API does where an adapter could get it wrong (unknown
fields, `max_tokens`, empty contents, tool_use / tool_result pairing, temperature range) and
answers with Anthropic's bodies, stream events and error envelope. The reply echoes the last
message, like the core fake; the system prompt's words are reported as cache reads.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.fake import agent
from gateway.fake.app import Answer, Request, json_answer
from gateway.fake.behaviour import DEFAULT_BEHAVIOUR, Behaviour
from gateway.fake.providers.base import (
    ProviderApp,
    ProviderStream,
    fragments,
    json_reply,
    sse_event,
)
from gateway.fake.replies import JSON, WireError, reply_pieces
from gateway.providers.anthropic.errors import error_type

MESSAGES = {
    "invalid_request_error": "Invalid request (fake anthropic).",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "The requested resource could not be found.",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit (fake anthropic).",
    "api_error": "Internal server error (fake anthropic).",
    "timeout_error": "Request timed out (fake anthropic).",
    "overloaded_error": "Overloaded",
}
REQUEST_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_p",
    "top_k", "tools", "tool_choice", "thinking", "service_tier", "container", "mcp_servers", "context_management",
    "output_config", "fake",
})
# What `count_tokens` takes: a Messages request without max_tokens and the sampling fields.
COUNT_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers",
                          "context_management", "output_config", "fake"})
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


class AnthropicFake(ProviderApp):
    def __init__(self, behaviour: Behaviour = DEFAULT_BEHAVIOUR, require_key: str | None = None) -> None:
        super().__init__(behaviour, require_key)
        self.routes = [("POST", re.compile(r"/v1/messages"), self._messages),
                       ("POST", re.compile(r"/v1/messages/count_tokens"), self._count_tokens)]

    def authorize(self, req: Request) -> Answer | None:
        if self.require_key is not None and req.headers.get("x-api-key") != self.require_key:
            return self.error(401)
        if not req.headers.get("anthropic-version"):
            return self.error(400, "anthropic-version: header is required")
        return None

    def error(self, status: int, message: str | None = None, behaviour: Behaviour | None = None) -> Answer:
        kind = error_type(status)
        body = {"type": "error", "error": {"type": kind, "message": message or MESSAGES[kind]},
                "request_id": "req_fake_error"}
        answer = json_answer(status, body, behaviour)
        answer.headers += (("request-id", "req_fake_error"),)
        if status == 529:
            answer.headers += (("x-should-retry", "true"),)
        return answer

    def _count_tokens(self, req: Request, match: re.Match[str], body: JSON, b: Behaviour, seq: int) -> Answer:
        """The same count as a reply's usage: words of the system prompt and of every message."""
        for field in body:
            if field not in COUNT_FIELDS:
                raise WireError(400, f"{field}: Extra inputs are not permitted")
        check_request({**body, "max_tokens": 1})
        words = len(_system_text(body.get("system")).split()) + sum(
            len(_message_text(m).split()) for m in body["messages"])
        return json_reply({"input_tokens": words}, b)

    def _messages(self, req: Request, match: re.Match[str], body: JSON, b: Behaviour, seq: int) -> Answer:
        check_request(body)
        system_words = len(_system_text(body.get("system")).split())
        words = [w for m in body["messages"] for w in _message_text(m).split()]
        if system_words + len(words) > b.context_words:
            raise WireError(400, f"prompt is too long: {system_words + len(words)} tokens > "
                                 f"{b.context_words} maximum")
        pieces = reply_pieces(_message_text(body["messages"][-1]).split(), b)
        output_format = (body.get("output_config") or {}).get("format")
        if isinstance(output_format, dict) and output_format.get("type") == "json_schema" and b.content is None:
            # Structured outputs: JSON that fits the schema.
            pieces = fragments(agent.json_reply(output_format.get("schema")))
        stop_reason = "end_turn"
        if len(pieces) > body["max_tokens"]:
            pieces, stop_reason = pieces[: body["max_tokens"]], "max_tokens"
        forced = _forced_call(body, pieces)
        call = forced or b.tool_call or (_agent_call(body) if b.agent else None)
        arguments = fragments(call["arguments"]) if call is not None else []
        if forced is not None:
            # A forced tool_choice: the API prefills the turn, so the tool_use block is all it says.
            pieces, stop_reason = [], "tool_use"
        elif call is not None:
            pieces, stop_reason = [f"Calling {call['name']}."], "tool_use"
        usage = {
            "input_tokens": len(words),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": system_words,
            "output_tokens": len(pieces) + len(arguments),
        }
        message_id = f"msg_fake{seq:010d}"
        tool_id = f"toolu_fake{seq:010d}"
        if body.get("stream") is True:
            return _stream(message_id, body["model"], pieces, call, tool_id, arguments, stop_reason, usage, b)
        content: list[JSON] = [{"type": "text", "text": "".join(pieces)}] if pieces or call is None else []
        if call is not None:
            content.append({"type": "tool_use", "id": tool_id, "name": call["name"],
                            "input": orjson.loads(call["arguments"] or "{}")})
        return json_reply({
            "id": message_id, "type": "message", "role": "assistant", "model": body["model"], "content": content,
            "stop_reason": stop_reason, "stop_sequence": None, "usage": usage,
        }, b)


def _stream(message_id: str, model: str, pieces: list[str], call: dict[str, str] | None, tool_id: str,
            arguments: list[str], stop_reason: str, usage: JSON, b: Behaviour) -> Answer:
    start: JSON = {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
             "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}
    # A forced tool call says nothing else: its tool_use is the first block.
    text = bool(pieces) or call is None
    head = (sse_event("message_start", {"type": "message_start", "message": start})
            + (sse_event("content_block_start", {"type": "content_block_start", "index": 0,
                                                 "content_block": {"type": "text", "text": ""}}) if text else b"")
            + sse_event("ping", {"type": "ping"}))
    events = [sse_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta", "text": piece}})
              for piece in pieces]
    last = 0
    if call is not None:
        last = 1 if text else 0
        opening = ((sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}) if text else b"")
                   + sse_event("content_block_start", {"type": "content_block_start", "index": last,
                                                       "content_block": {"type": "tool_use", "id": tool_id,
                                                                         "name": call["name"], "input": {}}}))
        deltas = [sse_event("content_block_delta", {"type": "content_block_delta", "index": last,
                                                    "delta": {"type": "input_json_delta", "partial_json": part}})
                  for part in arguments]
        events.append(opening + deltas[0])
        events.extend(deltas[1:])
    tail = (sse_event("content_block_stop", {"type": "content_block_stop", "index": last})
            + sse_event("message_delta", {"type": "message_delta",
                                          "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                          "usage": {"output_tokens": usage["output_tokens"]}})
            + sse_event("message_stop", {"type": "message_stop"}))
    stream = ProviderStream(head, events, tail, on_error=_error_event)
    return Answer(200, stream=stream, behaviour=b, headers=(("request-id", f"req_{message_id}"),))


def _forced_call(body: JSON, pieces: list[str]) -> dict[str, str] | None:
    """`tool_choice: {"type": "tool", "name": ...}`: that tool is called, whatever the turn says. Its
    input fits the tool's schema; a schema that names no properties gets the echo as `answer`."""
    choice = body.get("tool_choice")
    if not isinstance(choice, dict) or choice.get("type") != "tool":
        return None
    schemas = {t["name"]: t.get("input_schema") for t in body.get("tools") or ()}
    if choice.get("name") not in schemas:
        raise WireError(400, f"tool_choice.name: Tool '{choice.get('name')}' not found in tools")
    if body.get("thinking") is not None:
        raise WireError(400, "Thinking may not be enabled when tool_choice forces tool use.")
    schema = schemas[choice["name"]]
    value = agent.fit(schema) if isinstance(schema, dict) and schema.get("properties") else {"answer": "".join(pieces)}
    return {"name": choice["name"], "arguments": orjson.dumps(value).decode()}


def _agent_call(body: JSON) -> dict[str, str] | None:
    """The `agent` directive's tool_use: tools offered, and the last user turn holds no tool result."""
    tools = [(t["name"], t.get("input_schema")) for t in body.get("tools") or () if isinstance(t.get("name"), str)]
    last = body["messages"][-1]
    content = last.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    choice = body.get("tool_choice")
    if not tools or last.get("role") != "user" or any(block.get("type") == "tool_result" for block in blocks) \
            or (isinstance(choice, dict) and choice.get("type") == "none"):
        return None
    texts = [block["text"] for block in blocks if block.get("type") == "text" and isinstance(block.get("text"), str)]
    ask = texts[-1] if texts else ""
    name, schema = agent.pick(tools, ask)
    return {"name": name, "arguments": agent.arguments(schema, ask)}


def _error_event(after: int) -> bytes:
    return sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return " ".join(b.get("text", "") for b in system if isinstance(b, dict))
    return ""


def _message_text(message: JSON) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    texts = []
    for block in content or ():
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            inner = block.get("content")
            texts.append(inner if isinstance(inner, str) else _message_text({"content": inner or []}))
    return " ".join(texts)


def check_request(body: JSON) -> None:
    """The checks of the real API that an adapter could trip over."""
    for field in body:
        if field not in REQUEST_FIELDS:
            raise WireError(400, f"{field}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str):
        raise WireError(400, "model: Field required")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise WireError(400, "max_tokens: Field required")
    temperature = body.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and 0 <= temperature <= 1):
        raise WireError(400, "temperature: Input should be less than or equal to 1")
    system = body.get("system")
    if system is not None and not isinstance(system, str) and not (
            isinstance(system, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in system)):
        raise WireError(400, "system: Input should be a valid string or a list of text blocks")
    _check_tools(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError(400, "messages: Field required")
    pending: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise WireError(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        blocks = _blocks(message.get("content"), i, final_assistant=i == len(messages) - 1)
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if pending:
            leading = [str(b.get("tool_use_id")) for b in blocks[: len(pending)] if b.get("type") == "tool_result"]
            if message["role"] != "user" or sorted(leading) != sorted(pending):
                raise WireError(400, f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                                     f"immediately after: {', '.join(pending)}")
        elif results:
            raise WireError(400, f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks")
        pending = [b["id"] for b in blocks if b.get("type") == "tool_use"] if message["role"] == "assistant" else []


def _blocks(content: Any, i: int, final_assistant: bool) -> list[JSON]:
    if isinstance(content, str):
        if not content and not final_assistant:
            raise WireError(400, f"messages.{i}: all messages must have non-empty content except for the "
                                 "optional final assistant message")
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or (not content and not final_assistant):
        raise WireError(400, f"messages.{i}: all messages must have non-empty content except for the "
                             "optional final assistant message")
    for j, block in enumerate(content):
        where = f"messages.{i}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if not isinstance(block.get("text"), str) or not block["text"]:
                raise WireError(400, f"{where}.text: text content blocks must be non-empty")
        elif kind == "image":
            source = block.get("source") or {}
            if not (source.get("type") == "base64" and source.get("media_type") in IMAGE_TYPES
                    and isinstance(source.get("data"), str)) and not (
                    source.get("type") == "url" and isinstance(source.get("url"), str)):
                raise WireError(400, f"{where}.source: Input tag does not match any of the expected tags")
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not block["id"] or not isinstance(block.get("name"), str) \
                    or not isinstance(block.get("input"), dict):
                raise WireError(400, f"{where}: tool_use blocks need an id, a name and an input object")
        elif kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                raise WireError(400, f"{where}.tool_use_id: Field required")
        elif kind not in ("thinking", "redacted_thinking", "document"):
            raise WireError(400, f"{where}: Input tag {kind!r} found using 'type' does not match any of the "
                                 "expected tags")
    return content


def _check_tools(body: JSON) -> None:
    for i, tool in enumerate(body.get("tools") or ()):
        schema = tool.get("input_schema") if isinstance(tool, dict) else None
        if not isinstance(tool.get("name") if isinstance(tool, dict) else None, str):
            raise WireError(400, f"tools.{i}.name: Field required")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise WireError(400, f"tools.{i}.input_schema.type: Input should be 'object'")
    choice = body.get("tool_choice")
    if choice is not None and (not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool",
                                                                                           "none")):
        raise WireError(400, "tool_choice: Input tag does not match any of the expected tags")
