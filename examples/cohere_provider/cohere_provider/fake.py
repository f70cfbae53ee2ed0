"""A fake of Cohere's v2 chat API on the gateway's fake-server machinery.

`POST /v2/chat` with `Authorization: Bearer`, Cohere's response and stream events, its error
body (`{"id", "message"}`), and the core fake's failure injection (`fake` object, `x-fake-*`).
The reply echoes the last user message, like every gateway fake.

    python -m cohere_provider.fake --port 9950 [--require-key KEY]
"""

from __future__ import annotations

import argparse
import re
from typing import Any

import uvloop

from gateway.fake.app import Answer, Request, json_answer
from gateway.fake.behaviour import DEFAULT_BEHAVIOUR, Behaviour
from gateway.fake.providers.base import ProviderApp, ProviderStream, fragments, json_reply, sse_event
from gateway.fake.replies import JSON, WireError, reply_pieces
from gateway.fake.server import serve_app, serve_until_signalled

ROLES = frozenset({"system", "user", "assistant", "tool"})
FIELDS = frozenset({"model", "messages", "tools", "stream", "max_tokens", "temperature", "p", "k", "seed",
                    "stop_sequences", "frequency_penalty", "presence_penalty", "tool_choice", "response_format",
                    "strict_tools", "documents", "citation_options", "safety_mode", "fake"})


class CohereFake(ProviderApp):
    def __init__(self, behaviour: Behaviour = DEFAULT_BEHAVIOUR, require_key: str | None = None) -> None:
        super().__init__(behaviour, require_key)
        self.routes = [("POST", re.compile(r"/v2/chat"), self._chat)]

    def authorize(self, req: Request) -> Answer | None:
        if self.require_key is not None and req.headers.get("authorization") != f"Bearer {self.require_key}":
            return self.error(401, "invalid api token")
        return None

    def error(self, status: int, message: str | None = None, behaviour: Behaviour | None = None) -> Answer:
        default = {429: "You are past the rate limit (fake cohere).", 500: "internal server error"}
        return json_answer(status, {"id": "fake-error", "message": message or default.get(status, "invalid request")},
                           behaviour)

    def _chat(self, req: Request, match: re.Match[str], body: JSON, b: Behaviour, seq: int) -> Answer:
        _check(body)
        messages = body["messages"]
        words = sum(len(_text(m.get("content")).split()) for m in messages)
        pieces = reply_pieces(_text(messages[-1].get("content")).split(), b)
        call = b.tool_call
        usage = {"billed_units": {"input_tokens": words, "output_tokens": len(pieces)},
                 "tokens": {"input_tokens": words, "output_tokens": len(pieces)}}
        reply_id = f"fake-cohere-{seq:010d}"
        if body.get("stream") is True:
            return _stream(reply_id, pieces, call, usage, b)
        message: JSON = {"role": "assistant", "content": [{"type": "text", "text": "".join(pieces)}]}
        finish = "COMPLETE"
        if call is not None:
            message = {"role": "assistant", "tool_plan": f"I will call {call['name']}.", "tool_calls": [
                {"id": f"call_{seq}", "type": "function", "function": dict(call)}]}
            finish = "TOOL_CALL"
        return json_reply({"id": reply_id, "finish_reason": finish, "message": message, "usage": usage}, b)


def _stream(reply_id: str, pieces: list[str], call: dict[str, str] | None, usage: JSON, b: Behaviour) -> Answer:
    def event(kind: str, **fields: Any) -> bytes:
        return sse_event(kind, {"type": kind, **fields})

    head = event("message-start", id=reply_id, delta={"message": {"role": "assistant", "content": [],
                                                                  "tool_plan": "", "tool_calls": [], "citations": []}})
    if call is None:
        head += event("content-start", index=0, delta={"message": {"content": {"type": "text", "text": ""}}})
        events = [event("content-delta", index=0, delta={"message": {"content": {"text": p}}}) for p in pieces]
        tail = event("content-end", index=0)
        finish = "COMPLETE"
    else:
        head += event("tool-plan-delta", delta={"message": {"tool_plan": "I will call it."}})
        opening = event("tool-call-start", index=0, delta={"message": {"tool_calls": {
            "id": "call_fake", "type": "function", "function": {"name": call["name"], "arguments": ""}}}})
        parts = [event("tool-call-delta", index=0, delta={"message": {"tool_calls": {"function": {"arguments": f}}}})
                 for f in fragments(call["arguments"])]
        events = [opening + parts[0], *parts[1:]]
        tail = event("tool-call-end", index=0)
        finish = "TOOL_CALL"
    tail += event("message-end", delta={"finish_reason": finish, "usage": usage})
    error = event("message-end", delta={"finish_reason": "ERROR", "error": "fake cohere failed mid-stream"})
    return Answer(200, stream=ProviderStream(head, events, tail, on_error=lambda _: error), behaviour=b)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _check(body: JSON) -> None:
    for field in body:
        if field not in FIELDS:
            raise WireError(400, f"invalid request: unknown field: parameter {field} is not a valid field")
    messages = body.get("messages")
    if not isinstance(body.get("model"), str) or not isinstance(messages, list) or not messages:
        raise WireError(400, "invalid request: model and messages are required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise WireError(400, f"invalid request: messages[{i}].role must be one of {sorted(ROLES)}")
        if message["role"] == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise WireError(400, f"invalid request: messages[{i}].tool_call_id is required")


async def _serve(port: int, require_key: str | None) -> None:
    fake = await serve_app(CohereFake(require_key=require_key), "127.0.0.1", port)
    await serve_until_signalled(fake, f"fake cohere listening on http://127.0.0.1:{fake.port}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m cohere_provider.fake")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--require-key")
    args = parser.parse_args()
    uvloop.run(_serve(args.port, args.require_key))


if __name__ == "__main__":
    main()
