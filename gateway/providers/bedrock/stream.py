"""Bedrock's ConverseStream -> OpenAI `chat.completion.chunk`s.

The body is AWS's binary event-stream framing (`application/vnd.amazon.eventstream`), decoded by
botocore's `EventStreamBuffer` (prelude and message CRCs checked). Each message's `:event-type`
header names the event: messageStart, contentBlockStart (a tool call's id and name),
contentBlockDelta (text, or a tool call's input as JSON fragments), contentBlockStop,
messageStop (the stop reason) and metadata (usage, after messageStop). An `exception` message
is an in-band error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway.core.errors import GatewayError, UpstreamError
from gateway.core.types import Usage
from gateway.providers.bedrock.errors import error_from_exception
from gateway.providers.bedrock.response import finish_reason, usage_from
from gateway.providers.streaming import DONE, ChunkWriter


def _truncated(reason: str) -> UpstreamError:
    return UpstreamError(f"bedrock {reason}", status=502, type="server_error", code="upstream_stream_truncated")


class BedrockStreamTranslator:
    def __init__(self, client_wants_usage: bool, reply_id: str, model: str, created: int,
                 estimate: Callable[[int], Usage] | None = None) -> None:
        from botocore.eventstream import EventStreamBuffer  # the `bedrock` extra

        self._buffer = EventStreamBuffer()
        self.writer = ChunkWriter(reply_id, model, created)
        self._client_wants_usage = client_wants_usage
        self._reported: Usage | None = None
        # Deltas relayed -> estimated usage, for a stream that ends (or is cancelled) before metadata.
        self._estimate = estimate
        self.done = False
        self._tool_of_block: dict[int, int] = {}
        self._stopped = False
        self._error: GatewayError | None = None
        self._deltas = 0

    @property
    def usage(self) -> Usage | None:
        if self._reported is not None or self._estimate is None:
            return self._reported
        return self._estimate(self._deltas)

    def feed(self, data: bytes) -> bytes:
        from botocore.eventstream import ParserError

        if self.done or self._error is not None:
            return b""
        self._buffer.add_data(data)
        out: list[bytes] = []
        try:
            for message in self._buffer:
                # botocore-stubs types `headers` as int; botocore gives the parsed header dict.
                out.append(self._on_message(message.headers, message.payload))  # type: ignore[arg-type]
                if self.done or self._error is not None:
                    break
        except ParserError:
            self._error = _truncated("sent a damaged event-stream frame")
        return b"".join(out)

    def finish(self) -> bytes:
        if self.done:
            return b""
        if self._error is not None:
            raise self._error
        if not self._stopped:
            raise _truncated("ended the stream before the answer was complete")
        return self._tail()  # messageStop came but no metadata: usage stays what was counted

    def _on_message(self, headers: dict[str, Any], payload: bytes) -> bytes:
        if headers.get(":message-type") == "exception":
            self._error = error_from_exception(str(headers.get(":exception-type") or ""), payload)
            return b""
        try:
            data = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            return b""
        if not isinstance(data, dict):
            return b""
        handler = _HANDLERS.get(str(headers.get(":event-type")))
        return handler(self, data) if handler is not None else b""  # new event types are no-ops

    def _message_start(self, data: dict[str, Any]) -> bytes:
        return self.writer.role()

    def _block_start(self, data: dict[str, Any]) -> bytes:
        start, index = data.get("start"), data.get("contentBlockIndex")
        use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(use, dict) or not isinstance(index, int):
            return b""
        k = self._tool_of_block[index] = len(self._tool_of_block)
        return self.writer.tool_call_start(k, str(use.get("toolUseId") or ""), str(use.get("name") or ""))

    def _block_delta(self, data: dict[str, Any]) -> bytes:
        delta, index = data.get("delta"), data.get("contentBlockIndex")
        if not isinstance(delta, dict):
            return b""
        if isinstance(delta.get("text"), str) and delta["text"]:
            self._deltas += 1
            return self.writer.content(delta["text"])
        use = delta.get("toolUse")
        if isinstance(use, dict) and isinstance(use.get("input"), str) and isinstance(index, int):
            k = self._tool_of_block.get(index)
            if k is not None:
                self._deltas += 1
                return self.writer.tool_call_arguments(k, use["input"])
        return b""  # reasoningContent, citations: nothing OpenAI's stream carries

    def _message_stop(self, data: dict[str, Any]) -> bytes:
        self._stopped = True
        reason = finish_reason(data.get("stopReason"))
        if reason == "stop" and self._tool_of_block:
            reason = "tool_calls"
        return self.writer.finish(reason)

    def _metadata(self, data: dict[str, Any]) -> bytes:
        self._reported = usage_from(data.get("usage"))
        return self._tail() if self._stopped else b""

    def _tail(self) -> bytes:
        self.done = True
        if self._client_wants_usage and self.usage is not None:
            return self.writer.usage(self.usage) + DONE
        return DONE


_HANDLERS = {
    "messageStart": BedrockStreamTranslator._message_start,
    "contentBlockStart": BedrockStreamTranslator._block_start,
    "contentBlockDelta": BedrockStreamTranslator._block_delta,
    "messageStop": BedrockStreamTranslator._message_stop,
    "metadata": BedrockStreamTranslator._metadata,
}
