"""Structured logs: every `gateway.*` log record as one JSON line, and one line per request.

The request line carries who (key prefix, team), what (model, deployment, status, tokens, cost)
and how long, never a key, a header or the prompt; the prompt only when an operator turns
`log_prompts` on.

A server writes its request lines through a `LineWriter`, not through `logging`: the same JSON
line, but without a LogRecord, a formatter and a flushed write per request. The lines of one
event-loop iteration go out in one write at its end; a crash loses at most those.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from gateway.core.types import TEXT_FIELD, Endpoint, Principal
from gateway.pipeline.record import RequestRecord

LOGGER = "gateway"
REQUEST_LOGGER = "gateway.request"
# The body field that holds the prompt, per endpoint.
PROMPT_FIELD = {Endpoint.CHAT: "messages", Endpoint.SPEECH: "input", Endpoint.MODERATIONS: "input",
                **TEXT_FIELD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure_logging(level: str) -> None:
    """JSON lines on stderr for the `gateway` loggers, at `level`. Safe to call again."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler.formatter, JsonFormatter):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    # Still propagated: a server configures no root handler, and tests' log capture sits there.


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 3)


class LineWriter:
    """Lines buffered until the end of the current event-loop iteration, then written at once."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lines: list[bytes] = []
        atexit.register(self.flush)

    def write(self, line: bytes) -> None:
        if not self._lines:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop: at once
                self._lines.append(line)
                self.flush()
                return
        self._lines.append(line)

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            self.stream.flush()  # whatever `logging` wrote first stays first
            for chunk in _chunks(lines):
                buffer = getattr(self.stream, "buffer", None)
                if buffer is not None:
                    buffer.write(chunk)
                    buffer.flush()
                else:
                    self.stream.write(chunk.decode())
                    self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr: as logging does, never fail the request for it


# Writes up to this size reach a pipe whole, never interleaved with another worker's (PIPE_BUF).
_ATOMIC_WRITE = 4096


def _chunks(lines: list[bytes]) -> list[bytes]:
    """Whole lines, joined into writes no larger than a pipe keeps whole (a longer line alone)."""
    chunks: list[bytes] = []
    run: list[bytes] = []
    size = 0
    for line in lines:
        if run and size + len(line) > _ATOMIC_WRITE:
            chunks.append(b"".join(run))
            run, size = [], 0
        run.append(line)
        size += len(line)
    if run:
        chunks.append(b"".join(run))
    return chunks


class _Clock:
    """The `ts` field, formatted once a second (datetime formatting is most of a line's cost)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


class RequestLogRecorder:
    """`writer` given: lines go straight to it (a server); otherwise through `logger` (tests, embedding)."""

    def __init__(
        self, *, log_prompts: bool = False, logger: logging.Logger | None = None, writer: LineWriter | None = None
    ) -> None:
        self.log_prompts = log_prompts
        self.log = logger or logging.getLogger(REQUEST_LOGGER)
        self.writer = writer
        self._clock = _Clock()

    def record(self, record: RequestRecord) -> None:
        level = logging.WARNING if record.status >= 500 else logging.INFO
        if not self.log.isEnabledFor(level):
            return
        if self.writer is None:
            self.log.log(level, "request", extra={"fields": self.fields(record)})
            return
        doc: dict[str, Any] = {
            "ts": self._clock(time.time()),
            "level": "warning" if level == logging.WARNING else "info",
            "logger": self.log.name,
            "msg": "request",
        }
        doc.update(self.fields(record))
        self.writer.write(orjson.dumps(doc, default=str, option=orjson.OPT_APPEND_NEWLINE))

    def unrouted(self, request_id: str | None, method: str, path: str, status: int) -> None:
        """A request no handler took (an unknown path, a wrong method): one line all the same."""
        if self.log.isEnabledFor(logging.INFO):
            self.log.info("request", extra={"fields": {"request_id": request_id, "method": method, "path": path,
                                                       "status": status}})

    def plain(self, request_id: str | None, method: str, path: str, status: int, principal: Principal | None,
              endpoint: str) -> None:
        """A request that makes no upstream call (a stored response read or deleted): one line, with its key."""
        level = logging.WARNING if status >= 500 else logging.INFO
        if self.log.isEnabledFor(level):
            self.log.log(level, "request", extra={"fields": {
                "request_id": request_id, "endpoint": endpoint, "method": method, "path": path, "status": status,
                "key_prefix": principal.key_prefix if principal is not None else None,
                "team": principal.team_id if principal is not None else None}})

    def fields(self, record: RequestRecord) -> dict[str, Any]:
        deployment, usage, stream = record.deployment, record.usage, record.stream
        fields: dict[str, Any] = {
            "request_id": record.request_id,
            "endpoint": record.endpoint_name,
            "stream": stream,
            "model": record.model or None,
            "deployment": deployment.id if deployment is not None else None,
            "provider": deployment.provider if deployment is not None else None,
            "key_prefix": record.key_prefix,
            "team": record.team_id,
            "status": record.status,
            "error_type": record.error_type,
            "cancelled": record.cancelled,
            "attempts": record.attempts,
            "prompt_tokens": usage.prompt_tokens if usage is not None else None,
            "completion_tokens": usage.completion_tokens if usage is not None else None,
            "cached_tokens": usage.cached_tokens if usage is not None else None,
            # A string: the exact Decimal, not a float's approximation of it.
            "cost_usd": str(record.cost_usd) if record.cost_usd is not None else None,
            "duration_ms": _ms(record.started, record.finished),
            "upstream_ms": _ms(record.upstream_started, record.first_byte_at),
            "ttft_ms": _ms(record.started, record.first_byte_at) if stream else None,
        }
        if record.fallback:
            fields["fallback"] = True
        if record.cache_hit:
            fields["cache_hit"] = True
        if self.log_prompts:
            field = PROMPT_FIELD.get(record.endpoint, "input")
            # A guardrail masking in logs only leaves a masked copy (gateway/plugins/guardrails/pii.py).
            fields[field] = (record.redacted_body if record.redacted_body is not None else record.body).get(field)
        return fields
