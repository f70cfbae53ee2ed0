"""What every provider fake shares with the core fake and with each other.

A provider fake is the core fake's `App` (stats, recorded requests, `/_fake/*` control) with its
own routes, auth check and error envelope. Failure injection is the core fake's: a `fake`
object in the JSON body or `x-fake-*` headers, with the same directives, answered in the
provider's own wire format (its error bodies, its in-band stream errors).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from gateway.fake.app import Answer, App, Request, json_answer
from gateway.fake.behaviour import DEFAULT_BEHAVIOUR, Behaviour, DirectiveError, resolve, validate
from gateway.fake.replies import JSON, Stream, WireError, fragments

# (request, path match, JSON body, behaviour, sequence number) -> answer
Handler = Callable[[Request, "re.Match[str]", JSON, Behaviour, int], Answer]


# A provider's stream is the core fake's, with the provider's own in-band error (`on_error`).
ProviderStream = Stream

__all__ = ["ProviderApp", "ProviderStream", "fragments", "json_reply", "sse_data", "sse_event",
           "words_of"]


def words_of(text: str) -> list[str]:
    return text.split()


class ProviderApp(App):
    """Subclasses fill `routes` (method, path regex, handler) and give `authorize` and `error`."""

    def __init__(self, behaviour: Behaviour = DEFAULT_BEHAVIOUR, require_key: str | None = None) -> None:
        super().__init__(validate(behaviour))
        self.require_key = require_key
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def authorize(self, req: Request) -> Answer | None:
        """None when the request may proceed; else the provider's auth error."""
        raise NotImplementedError

    def error(self, status: int, message: str | None = None, behaviour: Behaviour | None = None) -> Answer:
        raise NotImplementedError

    def route(self, req: Request) -> tuple[Handler, re.Match[str]] | None:
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(req.path)
            if method == req.method and match:
                return handler, match
        return None

    def _answer(self, req: Request, body: Any, seq: int) -> Answer:
        denied = self.authorize(req)
        if denied is not None:
            return denied
        routed = self.route(req)
        if routed is None:
            return self.error(404, f"Not found: {req.method} {req.path}")
        handler, match = routed
        try:
            fields = orjson.loads(req.body) if req.body else {}
        except orjson.JSONDecodeError:
            return self.error(400, "The request body is not valid JSON.")
        if req.method == "POST" and not isinstance(fields, dict):
            return self.error(400, "The request body must be a JSON object.")
        try:
            b = resolve(self.behaviour, fields.get("fake"), req.headers)
        except DirectiveError as exc:
            return self.error(400, str(exc))
        if b.status != 200:
            answer = self.error(b.status, None, b)
            if b.retry_after is not None:
                answer.headers += (("retry-after", f"{b.retry_after:g}"),)
            return answer
        try:
            return handler(req, match, fields, b, seq)
        except WireError as exc:
            return self.error(exc.status, str(exc), b)


def sse_event(name: str, data: JSON) -> bytes:
    """An SSE frame with an event name, as Anthropic and Cohere send them."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def sse_data(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def json_reply(obj: Any, b: Behaviour | None) -> Answer:
    return json_answer(200, obj, b)


