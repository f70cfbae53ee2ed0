"""What the router knows of a request before sending it: rough token counts and a prefix key.

Tokens are estimated as admission estimates them (gateway/accounting/limits/estimate.py, four characters
a token): good enough to compare prices, to check a context window and to charge a tpm cap,
which the real usage then corrects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from gateway.accounting.limits.estimate import output_tokens, prompt_tokens
from gateway.core.request import ClientRequest

# Completion tokens assumed when the request sets no maximum.
DEFAULT_OUTPUT_TOKENS = 256


@dataclass(slots=True)
class RouteRequest:
    model: str
    stream: bool
    prompt_tokens: int
    # What the answer is expected to cost (for prices and caps), and what the client capped it at.
    output_tokens: int
    max_output_tokens: int = 0
    body: dict[str, Any] = field(repr=False, default_factory=dict)
    prefix_chars: int = 2048
    _prefix_hash: int | None = field(default=None, repr=False)
    _prefix_done: bool = field(default=False, repr=False)

    @classmethod
    def from_request(cls, request: ClientRequest, prefix_chars: int) -> RouteRequest:
        body, endpoint = request.body, request.endpoint
        return cls(
            request.model,
            request.stream,
            prompt_tokens(body, endpoint),
            output_tokens(body, endpoint, DEFAULT_OUTPUT_TOKENS),
            output_tokens(body, endpoint, 0),
            body,
            prefix_chars,
        )

    @property
    def expected_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    def fits(self, context_window: int | None) -> bool:
        return context_window is None or self.prompt_tokens + self.max_output_tokens <= context_window

    def prefix_hash(self) -> int | None:
        """A hash of the prompt's shared part (system prompt and history), None if it has none."""
        if not self._prefix_done:
            key = prefix_key(self.body, self.prefix_chars)
            self._prefix_hash = None if key is None else stable_hash(key)
            self._prefix_done = True
        return self._prefix_hash


def prefix_key(body: dict[str, Any], prefix_chars: int) -> str | None:
    """The leading characters requests share when they continue one conversation or reuse one
    system prompt: every message but the last; a lone prompt only when it is longer than the key."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        shared = "".join(_message_text(m) for m in messages[:-1])
        if shared:
            return shared[:prefix_chars]
        lone = _message_text(messages[0])
    else:
        prompt = body.get("prompt")
        lone = prompt if isinstance(prompt, str) else ""
    return lone[:prefix_chars] if len(lone) > prefix_chars else None


def stable_hash(text: str) -> int:
    # Not Python's hash(): that is salted per process, and every worker must agree.
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    return f"<{message.get('role', '')}>" + _flatten(message.get("content"))


def _flatten(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""
