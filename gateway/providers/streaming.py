"""What every non-OpenAI stream translator shares: reading SSE events, writing OpenAI chunks.

A provider's translator only says what each of its events means (`on_event`); framing, the
final usage chunk, `[DONE]`, in-band errors and truncated streams are handled here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.core.errors import GatewayError, UpstreamError
from gateway.core.types import Usage

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": ping\n\n"


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str

    def json(self) -> Any:
        """The data as JSON, or None when it is not JSON."""
        try:
            return orjson.loads(self.data)
        except orjson.JSONDecodeError:
            return None


class SSEParser:
    """Splits a byte stream into server-sent events, whatever the framing of the reads."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[SSEEvent]:
        data = self._buffer + data
        if b"\r" in data:
            if data.endswith(b"\r"):  # perhaps the first half of a \r\n
                data, self._buffer = data[:-1], b"\r"
            else:
                self._buffer = b""
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        else:
            self._buffer = b""
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buffer = data + self._buffer
            return []
        self._buffer = data[end + 2 :] + self._buffer
        return [event for block in data[:end].split(b"\n\n") if (event := _parse_block(block)) is not None]

    def flush(self) -> list[SSEEvent]:
        """The last event of a stream that did not end with a blank line."""
        rest, self._buffer = self._buffer.strip(), b""
        return self.feed(rest + b"\n\n") if rest else []


def _parse_block(block: bytes) -> SSEEvent | None:
    if block.startswith(b"data: ") and b"\n" not in block:
        return SSEEvent(None, block[6:].decode("utf-8", errors="replace"))  # the common one-line event
    name: str | None = None
    data: list[str] = []
    for raw in block.split(b"\n"):
        line = raw.decode("utf-8", errors="replace")
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if name is None and not data:
        return None
    return SSEEvent(name, "\n".join(data))


def openai_usage(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage object; `prompt_tokens` includes cached tokens, as OpenAI counts them."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


class ChunkWriter:
    """Serialises `chat.completion.chunk` events that share one id, model and created time."""

    __slots__ = ("created", "id", "model")

    def __init__(self, id: str, model: str, created: int) -> None:
        self.id = id
        self.model = model
        self.created = created

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None, index: int = 0) -> bytes:
        return self._chunk([{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])

    def role(self, index: int = 0) -> bytes:
        return self.delta({"role": "assistant", "content": ""}, index=index)

    def content(self, text: str, index: int = 0) -> bytes:
        return self.delta({"content": text}, index=index)

    def tool_call_start(self, k: int, call_id: str, name: str, arguments: str = "", index: int = 0) -> bytes:
        call = {"index": k, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        return self.delta({"tool_calls": [call]}, index=index)

    def tool_call_arguments(self, k: int, fragment: str, index: int = 0) -> bytes:
        return self.delta({"tool_calls": [{"index": k, "function": {"arguments": fragment}}]}, index=index)

    def finish(self, reason: str, index: int = 0) -> bytes:
        return self.delta({}, reason, index=index)

    def usage(self, usage: Usage) -> bytes:
        return self._chunk([], usage=openai_usage(usage))


class EventStreamTranslator:
    """Base of the translators for providers that stream their own SSE events.

    Subclasses implement `on_event`, returning the OpenAI bytes for one event, and call
    `complete()` when the provider says the answer is over, or `fail()` on an in-band error.
    """

    def __init__(self, writer: ChunkWriter, client_wants_usage: bool, provider: str) -> None:
        self.usage: Usage | None = None
        self.done = False
        self.writer = writer
        self._client_wants_usage = client_wants_usage
        self._provider = provider
        self._parser = SSEParser()
        self._error: GatewayError | None = None
        self._complete = False

    def on_event(self, event: SSEEvent) -> bytes:
        raise NotImplementedError

    def complete(self) -> None:
        """The answer is over; the tail follows when the upstream closes the stream."""
        self._complete = True

    def end(self) -> bytes:
        """The answer is over and the provider said so explicitly: the tail, at once."""
        self._complete = True
        return self._tail()

    def fail(self, error: GatewayError) -> None:
        # Raised from finish(), so the proxy sends it in-band after what came before it.
        self._error = error

    def feed(self, data: bytes) -> bytes:
        return self._translate(self._parser.feed(data))

    def finish(self) -> bytes:
        out = self._translate(self._parser.flush())
        if self.done:
            return out
        if self._error is not None:
            raise self._error
        if not self._complete:
            raise UpstreamError(
                f"{self._provider} ended the stream before the answer was complete",
                status=502,
                type="server_error",
                code="upstream_stream_truncated",
            )
        return out + self._tail()

    def _translate(self, events: list[SSEEvent]) -> bytes:
        out: list[bytes] = []
        for event in events:
            if self._error is not None or self.done:
                break
            out.append(self.on_event(event))
        return b"".join(out)

    def _tail(self) -> bytes:
        self.done = True
        if self._client_wants_usage and self.usage is not None:
            return self.writer.usage(self.usage) + DONE
        return DONE
