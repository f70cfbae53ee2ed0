"""OpenAI's SSE stream, relayed as it comes: only the events that carry usage are touched."""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson

from gateway.core.types import Usage
from gateway.providers.estimate import count_deltas


class OpenAIStreamTranslator:
    """Relays OpenAI SSE bytes as they come, touching only the events that carry usage.

    Complete events are forwarded in the same reads they arrived in; only the usage chunk is
    parsed (found by one regex pass over the read), so the per-event cost stays near a memcpy.
    Until a usage chunk arrives, content deltas are counted (one more pass), so a stream cancelled
    by the client, or one from an upstream that reports no usage, is still charged for what it sent.
    """

    __slots__ = ("_buffer", "_estimate", "_reported", "_strip_usage", "deltas", "done")

    def __init__(self, strip_usage: bool, estimate: Callable[[int], Usage] | None = None) -> None:
        self._strip_usage = strip_usage
        self._buffer = b""
        self._reported: Usage | None = None
        # Completion deltas -> estimated usage; None: no estimate, usage stays None without a report.
        self._estimate = estimate
        self.deltas = 0
        self.done = False

    @property
    def usage(self) -> Usage | None:
        """What the upstream reported; failing that, an estimate from the deltas relayed so far."""
        if self._reported is not None or self._estimate is None:
            return self._reported
        return self._estimate(self.deltas)

    def feed(self, data: bytes) -> bytes:
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        if b"\r" in data:
            if data.endswith(b"\r"):
                data, self._buffer = data[:-1], b"\r"
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buffer = data + self._buffer
            return b""
        complete, rest = data[: end + 2], data[end + 2 :]
        self._buffer = rest + self._buffer
        # One pass finds the first usage object, compact or spaced; [DONE], which closes a
        # stream, is looked for from the end.
        usage = _USAGE.search(complete)
        if usage is not None:
            complete = self._take_usage(complete, usage.start())
        if self._reported is None:
            self.deltas += count_deltas(complete)
        if not self.done and complete.rfind(b"[DONE]") >= 0:
            self.done = True
        return complete

    def finish(self) -> bytes:
        tail = self._buffer.strip()
        self._buffer = b""
        out = self.feed(tail + b"\n\n") if tail else b""
        if not self.done:
            out += b"data: [DONE]\n\n"
            self.done = True
        return out

    def _take_usage(self, complete: bytes, at: int) -> bytes:
        # Events before the first usage object (at `at`) pass as they are, and of the rest only
        # those that carry one are parsed: with include_usage on, every chunk says `"usage":null`.
        cut = complete.rfind(b"\n\n", 0, at)
        cut = 0 if cut < 0 else cut + 2
        kept: list[bytes] = []
        for event in complete[cut:].split(b"\n\n"):
            if not event:
                continue
            if _USAGE.search(event) is not None:
                event = self._usage_event(event)
            if event:
                kept.append(event)
        tail = b"\n\n".join(kept) + b"\n\n" if kept else b""
        return complete[:cut] + tail

    def _usage_event(self, event: bytes) -> bytes:
        payload = event.partition(b"data:")[2].strip()
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return event
        usage = chunk.get("usage") if isinstance(chunk, dict) else None
        if not isinstance(usage, dict):
            return event
        self._reported = Usage.from_openai(usage)
        if not chunk.get("choices"):
            if self._strip_usage:
                return b""
            if chunk.get("choices") is None:
                # Some servers send `choices: null` here; the SDKs expect a list.
                chunk["choices"] = []
                return b"data: " + orjson.dumps(chunk)
        return event


# A usage object, in compact JSON or with a space after the colon (a regex pass over a read
# costs less than the two byte searches it replaces).
_USAGE = re.compile(rb'"usage": ?\{')
