"""OpenAI wire bodies the fake upstream answers with: pure functions of request, behaviour and ids.

The reply text is an echo, so tests can predict it: the words of the last message (or prompt),
cycled to `behaviour.tokens` items and joined by spaces, unless `behaviour.content` says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.fake import agent
from gateway.fake.behaviour import Behaviour

JSON = dict[str, Any]

FINGERPRINT = "fp_fake"
MODEL_IDS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "fake-model")
MODELS_CREATED = 1_700_000_000
MAX_CHOICES = 128
DONE = b"data: [DONE]\n\n"

# status -> (type, code, message), as OpenAI sends them for that status.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (fake upstream)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "request_forbidden",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported.",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    408: ("invalid_request_error", "timeout", "Request timed out."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (fake upstream)."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", "overloaded", "The engine is currently overloaded, please try again later."),
    504: ("server_error", "timeout", "Gateway timeout."),
}


def _error_kind(status: int) -> tuple[str, str | None, str]:
    fallback = ("invalid_request_error", None, "Request failed.") if status < 500 else _ERRORS[500]
    return _ERRORS.get(status, fallback)


def _envelope(message: str, kind: str, param: str | None, code: str | None) -> JSON:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_body(status: int) -> JSON:
    """What OpenAI answers with `status` (the status directive)."""
    kind, code, message = _error_kind(status)
    return _envelope(message, kind, None, code)


class WireError(Exception):
    """A request OpenAI would refuse; becomes an error body with `status`."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code

    def body(self) -> JSON:
        return _envelope(str(self), _error_kind(self.status)[0], self.param, self.code)


@dataclass(frozen=True, slots=True)
class Stream:
    """An SSE reply cut where directives act: drop_after/error_after count `events`."""

    head: bytes  # sent together with the first content event, so a TTFT delay covers it too
    events: list[bytes]
    tail: bytes  # finish chunks, the usage chunk, [DONE]
    # The in-band error after `error_after` events, in the wire format's own words; OpenAI chat's by default.
    on_error: Callable[[int], bytes] | None = None

    def steps(self, b: Behaviour) -> tuple[list[tuple[float, bytes]], bool]:
        """(delay_ms, data) pairs to send after the response headers, and whether to abort at the end."""
        cut, ending = len(self.events), "done"
        if b.error_after is not None and b.error_after <= cut:
            cut, ending = b.error_after, "error"
        if b.drop_after is not None and b.drop_after <= cut:
            cut, ending = b.drop_after, "drop"
        steps = [
            (b.ttft_ms if i == 0 else b.inter_token_ms, self.head + event if i == 0 else event)
            for i, event in enumerate(self.events[:cut])
        ]
        final_delay = 0.0 if steps else b.ttft_ms
        if ending == "done":
            steps.append((final_delay, self.tail if steps else self.head + self.tail))
        elif ending == "error":
            steps.append((final_delay, (self.on_error or error_event)(cut)))
        elif not steps:
            steps.append((final_delay, b""))  # the upstream dies while "thinking"
        return steps, ending == "drop"


def sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def error_event(after: int) -> bytes:
    return sse(WireError(500, f"The fake upstream failed after {after} content events.").body())


def usage_body(prompt: int, completion: int, *, details: bool = True) -> JSON:
    usage: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if details:
        usage["prompt_tokens_details"] = {"cached_tokens": 0}
    return usage


def reply_pieces(words: list[str], b: Behaviour) -> list[str]:
    """Stream pieces of the reply; their concatenation is the non-stream text."""
    if b.content is not None:
        tokens = b.content.split(" ")
    else:
        words = words or ["tok"]
        tokens = [words[i % len(words)] for i in range(b.tokens)]
    return [token if i == 0 else " " + token for i, token in enumerate(tokens)]


def require_model(req: JSON) -> str:
    model = req.get("model")
    if not isinstance(model, str) or not model:
        raise WireError(400, "you must provide a model parameter", param="model")
    return model


def _choices(req: JSON) -> int:
    n = req.get("n")
    if n is None:
        return 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CHOICES:
        raise WireError(400, f"'n' must be an integer between 1 and {MAX_CHOICES}", param="n")
    return n


def _include_usage(req: JSON, b: Behaviour) -> bool:
    options = req.get("stream_options")
    return b.usage and isinstance(options, dict) and options.get("include_usage") is True


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return ""


def _chat_words(req: JSON) -> tuple[list[str], int]:
    """Words of the last message, and the prompt token count (words over all messages)."""
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise WireError(400, "'messages' must be a non-empty array of objects", param="messages")
    texts = [_text(m.get("content")) for m in messages]
    return texts[-1].split(), sum(len(text.split()) for text in texts)


class _Chunks:
    """Serialises the chunks of one stream; every chunk repeats the same id and created."""

    def __init__(self, base: JSON, include_usage: bool):
        self.base = base
        self.include_usage = include_usage

    def choice(self, choice: JSON) -> bytes:
        chunk = {**self.base, "choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None
        return sse(chunk)

    def usage(self, usage: JSON) -> bytes:
        return sse({**self.base, "choices": [], "usage": usage})

    def template(self, choice: JSON, key: str) -> Callable[[str], bytes]:
        """Events that differ only in the string at `key` (empty in `choice`).

        A stream is mostly such events; one small dumps each keeps long streams cheap to build.
        """
        slot = b'"%b":' % key.encode()
        prefix, found, suffix = self.choice(choice).partition(slot + b'""')
        assert found, key
        prefix += slot
        return lambda value: prefix + orjson.dumps(value) + suffix


def fragments(text: str, parts: int = 3) -> list[str]:
    """`text` cut in about `parts` pieces, as streamed arguments arrive; an empty text is one empty piece."""
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _ask(messages: list[JSON]) -> str:
    """The user's last words: the last text of the last user message (Claude Code puts reminders first)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            texts = [p["text"] for p in content or () if isinstance(p, dict) and isinstance(p.get("text"), str)]
            return texts[-1] if texts else ""
    return ""


def _agent_call(req: JSON) -> dict[str, str] | None:
    """The `agent` directive's tool call: tools offered, and no tool result since the user spoke."""
    tools = [(t["function"]["name"], t["function"].get("parameters")) for t in req.get("tools") or ()
             if isinstance(t, dict) and isinstance(t.get("function"), dict) and isinstance(t["function"].get("name"),
                                                                                          str)]
    messages = req["messages"]
    if not tools or req.get("tool_choice") == "none" or messages[-1].get("role") != "user":
        return None
    ask = _ask(messages)
    name, schema = agent.pick(tools, ask)
    return {"name": name, "arguments": agent.arguments(schema, ask)}


def _chat_pieces(req: JSON, words: list[str], b: Behaviour) -> list[str]:
    schema = agent.json_schema_of(req.get("response_format"))
    if schema is not None and b.content is None:
        return fragments(agent.json_reply(schema))
    return reply_pieces(words, b)


def chat(req: JSON, b: Behaviour, seq: int, created: int) -> JSON | Stream:
    model = require_model(req)
    words, prompt_tokens = _chat_words(req)
    n = _choices(req)
    pieces = _chat_pieces(req, words, b)
    call = b.tool_call or (_agent_call(req) if b.agent else None)
    usage = usage_body(prompt_tokens, len(pieces) * n)
    reply_id = f"chatcmpl-fake{seq:010d}"
    call_ids = [f"call_fake{seq:010d}_{i}" for i in range(n)]
    if req.get("stream") is True:
        base = {
            "id": reply_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": FINGERPRINT,
        }
        chunks = _Chunks(base, _include_usage(req, b))
        if call is not None:
            return _tool_call_stream(chunks, call, call_ids, usage)
        return _text_stream(chunks, pieces, n, usage)

    if call is not None:
        finish = "tool_calls"
        messages = [
            {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [{"id": call_id, "type": "function", "function": dict(call)}],
            }
            for call_id in call_ids
        ]
    else:
        finish = "stop"
        messages = [{"role": "assistant", "content": "".join(pieces), "refusal": None}] * n
    body: JSON = {
        "id": reply_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": i, "message": message, "finish_reason": finish, "logprobs": None}
            for i, message in enumerate(messages)
        ],
        "system_fingerprint": FINGERPRINT,
    }
    if b.usage:
        body["usage"] = usage
    return body


def _delta(index: int, delta: JSON, finish: str | None = None) -> JSON:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def _text_stream(chunks: _Chunks, pieces: list[str], n: int, usage: JSON) -> Stream:
    head = b"".join(chunks.choice(_delta(i, {"role": "assistant", "content": ""})) for i in range(n))
    # With n > 1 the choices interleave token by token, as OpenAI's do.
    fill = [chunks.template(_delta(i, {"content": ""}), "content") for i in range(n)]
    events = [fill[i](piece) for piece in pieces for i in range(n)]
    tail = [chunks.choice(_delta(i, {}, "stop")) for i in range(n)]
    if chunks.include_usage:
        tail.append(chunks.usage(usage))
    return Stream(head, events, b"".join(tail) + DONE)


def _tool_call_stream(chunks: _Chunks, call: dict[str, str], call_ids: list[str], usage: JSON) -> Stream:
    head = b"".join(chunks.choice(_delta(i, {"role": "assistant", "content": None})) for i in range(len(call_ids)))
    events = []
    for i, call_id in enumerate(call_ids):
        opening = {
            "index": 0,
            "id": call_id,
            "type": "function",
            "function": {"name": call["name"], "arguments": ""},
        }
        events.append(chunks.choice(_delta(i, {"tool_calls": [opening]})))
        events.extend(
            chunks.choice(_delta(i, {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}))
            for fragment in fragments(call["arguments"])
        )
    tail = [chunks.choice(_delta(i, {}, "tool_calls")) for i in range(len(call_ids))]
    if chunks.include_usage:
        tail.append(chunks.usage(usage))
    return Stream(head, events, b"".join(tail) + DONE)


def _prompts(req: JSON) -> list[list[str]]:
    """The words of each prompt; token arrays count each token id as a word."""
    prompt = req.get("prompt")
    if isinstance(prompt, str):
        return [prompt.split()]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return [p.split() for p in prompt]
        if all(isinstance(t, int) for t in prompt):
            return [[str(t) for t in prompt]]
        if all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in prompt):
            return [[str(t) for t in p] for p in prompt]
    raise WireError(400, "'prompt' must be a string, a list of strings or token arrays", param="prompt")


def completion(req: JSON, b: Behaviour, seq: int, created: int) -> JSON | Stream:
    model = require_model(req)
    prompts = _prompts(req)
    n = _choices(req)
    # OpenAI answers n choices per prompt, indexed prompt-major.
    texts = [reply_pieces(words, b) for words in prompts for _ in range(n)]
    usage = usage_body(sum(map(len, prompts)), sum(map(len, texts)), details=False)
    base = {"id": f"cmpl-fake{seq:010d}", "object": "text_completion", "created": created, "model": model}
    if req.get("stream") is True:
        chunks = _Chunks(base, _include_usage(req, b))
        fill = [
            chunks.template({"text": "", "index": i, "logprobs": None, "finish_reason": None}, "text")
            for i in range(len(texts))
        ]
        events = [
            fill[i](pieces[t]) for t in range(max(map(len, texts))) for i, pieces in enumerate(texts) if t < len(pieces)
        ]
        tail = [
            chunks.choice({"text": "", "index": i, "logprobs": None, "finish_reason": "stop"})
            for i in range(len(texts))
        ]
        if chunks.include_usage:
            tail.append(chunks.usage(usage))
        return Stream(b"", events, b"".join(tail) + DONE)

    choices = [
        {"text": "".join(pieces), "index": i, "logprobs": None, "finish_reason": "stop"}
        for i, pieces in enumerate(texts)
    ]
    body: JSON = {**base, "choices": choices}
    if b.usage:
        body["usage"] = usage
    return body


def model_object(model_id: str) -> JSON:
    return {"id": model_id, "object": "model", "created": MODELS_CREATED, "owned_by": "fake"}


def models_list() -> JSON:
    return {"object": "list", "data": [model_object(model_id) for model_id in MODEL_IDS]}
