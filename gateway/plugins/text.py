"""The text a model reads in a request body, and the text it wrote in an answer: to scan or rewrite.

Chat: every message's `content` (a string, or the `text` of its text parts; tool results too) and
tool-call arguments; completions: `prompt`; embeddings: `input`. Answers: each choice's
`message.content` (chat) or `text` (completions), or a Responses API `response`'s `output_text`
parts (a native relay).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from gateway.core.types import TEXT_FIELD, Endpoint

Rewrite = Callable[[str], str]
JSON = dict[str, Any]


def request_texts(body: dict[str, Any], endpoint: Endpoint) -> Iterator[tuple[str, str]]:
    """(role, text) for every piece of text; role is the message's, or "user" outside chat."""
    if endpoint is Endpoint.CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list):
            return
        for message in messages:
            if not isinstance(message, dict):
                continue
            role = str(message.get("role") or "user")
            yield from ((role, text) for text in _content_texts(message.get("content")))
            for call in message.get("tool_calls") or ():
                arguments = call.get("function", {}).get("arguments") if isinstance(call, dict) else None
                if isinstance(arguments, str):
                    yield role, arguments
        return
    value = body.get(TEXT_FIELD.get(endpoint, "input"))
    if isinstance(value, str):
        yield "user", value
    elif isinstance(value, list):
        yield from (("user", v) for v in value if isinstance(v, str))


def _content_texts(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"]


def rewrite_request(body: dict[str, Any], endpoint: Endpoint, rewrite: Rewrite) -> None:
    """Apply `rewrite` to every text of the request, in place."""
    if endpoint is Endpoint.CHAT:
        for message in body.get("messages") or ():
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = rewrite(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        part["text"] = rewrite(part["text"])
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    function["arguments"] = rewrite(function["arguments"])
        return
    field = TEXT_FIELD.get(endpoint, "input")
    value = body.get(field)
    if isinstance(value, str):
        body[field] = rewrite(value)
    elif isinstance(value, list):
        body[field] = [rewrite(v) if isinstance(v, str) else v for v in value]


def prompt_chars(body: dict[str, Any], endpoint: Endpoint) -> int:
    return sum(len(text) for _, text in request_texts(body, endpoint))


def rewrite_answer(body: dict[str, Any], rewrite: Rewrite) -> None:
    """Apply `rewrite` to the text of every choice of a non-stream answer, in place."""
    for choice in body.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            message["content"] = rewrite(message["content"])
        elif isinstance(choice.get("text"), str):
            choice["text"] = rewrite(choice["text"])
    for item in body.get("output") or ():  # a Responses API `response`, relayed natively
        for _, part in output_text_parts(item):
            part["text"] = rewrite(part["text"])


def output_text_parts(item: Any) -> Iterator[tuple[int, JSON]]:
    """(content index, part) for each `output_text` part of a Responses `message` output item."""
    if not isinstance(item, dict) or item.get("type") != "message" or not isinstance(item.get("content"), list):
        return
    for index, part in enumerate(item["content"]):
        if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
            yield index, part
