"""Any OpenAI-compatible server: OpenAI itself, vLLM, Ollama, Groq, Together, another gateway.

The request passes through untouched except for the model name and, on streams, asking for
the usage chunk so accounting sees real numbers. Responses pass through as bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import (
    ContextLengthExceeded,
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.core.types import Endpoint, Usage
from gateway.core.upload import BodyFactory
from gateway.pipeline.context import RequestContext
from gateway.providers.base import ask_for_stream_usage, timeouts, upstream_model
from gateway.providers.estimate import completion_tokens, count_deltas, estimated_usage
from gateway.providers.units import TEXT_FORMATS, BinaryRelay, speech_usage, units_usage
from gateway.upstream.client import UpstreamCall

_SECRETISH = re.compile(r"(sk|key|api)[-_][A-Za-z0-9_\-]{6,}", re.IGNORECASE)
_MAX_MESSAGE = 1000
_TOKEN_ENDPOINTS = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})


@dataclass(slots=True, frozen=True)
class _Target:
    url: str
    headers: dict[str, str]
    timeout_s: float
    connect_timeout_s: float


class OpenAIProvider:
    name = "openai"

    def __init__(self, settings: Settings) -> None:
        self._default_timeout = settings.upstream_timeout_s
        self._default_connect = settings.upstream_connect_timeout_s
        # Keyed by the deployment object's identity: deployments live as long as the app.
        self._targets: dict[tuple[int, Endpoint], _Target] = {}

    def build_call(self, ctx: RequestContext, deployment: Deployment) -> UpstreamCall:
        target = self._targets.get((id(deployment), ctx.endpoint))
        if target is None:
            target = self._targets[(id(deployment), ctx.endpoint)] = self._target(deployment, ctx.endpoint)
        body = self.request_body(ctx, deployment)
        headers = {**target.headers, "X-Request-Id": ctx.request_id}
        payload: bytes | BodyFactory
        if ctx.upload is not None:
            # The form is written from the body, so what changed it (the model name, a guardrail) counts.
            fields = [(name, str(item)) for name, value in body.items()
                      for item in (value if isinstance(value, list) else [value])]
            headers["Content-Type"], length, payload = ctx.upload.form(fields)
            headers["Content-Length"] = str(length)
        else:
            payload = orjson.dumps(body)
        return UpstreamCall(
            method="POST",
            url=target.url,
            headers=headers,
            body=payload,
            timeout_s=target.timeout_s,
            connect_timeout_s=target.connect_timeout_s,
            deployment_id=deployment.id or "",
        )

    def request_body(self, ctx: RequestContext, deployment: Deployment) -> dict[str, Any]:
        """The client's body with the upstream's model name and, on streams, a request for usage."""
        body = dict(ctx.body)
        body["model"] = upstream_model(deployment, ctx.model)
        if ctx.stream and ctx.endpoint is not Endpoint.EMBEDDINGS:
            ask_for_stream_usage(body)
        return body

    def extra_headers(self, deployment: Deployment) -> dict[str, str]:
        """Headers a service wants beside the key (none for OpenAI itself)."""
        return {}

    def _target(self, deployment: Deployment, endpoint: Endpoint) -> _Target:
        """What never changes between calls to one deployment's endpoint, worked out once."""
        # Compressing small JSON costs both sides more CPU than it saves on a LAN.
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        if deployment.api_key is not None:
            headers["Authorization"] = "Bearer " + deployment.api_key.get_secret_value()
        headers.update(self.extra_headers(deployment))
        timeout_s, connect_s = timeouts(deployment, self._default_timeout, self._default_connect)
        return _Target(f"{deployment.base_url}/{endpoint.value}", headers, timeout_s, connect_s)

    def parse_response(self, ctx: RequestContext, deployment: Deployment, body: bytes) -> tuple[bytes, Usage | None]:
        text_format = TEXT_FORMATS.get(str(ctx.body.get("response_format"))) if ctx.upload is not None else None
        if text_format is not None:
            ctx.response_headers["content-type"] = text_format
            return body, units_usage(ctx.endpoint, ctx.body, None)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"deployment {deployment.id} returned a body that is not JSON",
                status=502,
                type="server_error",
                code="bad_upstream_response",
            ) from None
        if ctx.endpoint not in _TOKEN_ENDPOINTS:
            return body, units_usage(ctx.endpoint, ctx.body, parsed)
        usage = parsed.get("usage") if isinstance(parsed, dict) else None
        if isinstance(usage, dict):
            return body, Usage.from_openai(usage)
        # No usage at all (some self-hosted servers): estimated, and the ledger row says so.
        return body, estimated_usage(ctx.body, ctx.endpoint, completion_tokens(parsed))

    def stream_translator(self, ctx: RequestContext, deployment: Deployment) -> OpenAIStreamTranslator | BinaryRelay:
        if ctx.endpoint is Endpoint.SPEECH:
            return BinaryRelay(speech_usage(ctx.body))
        return OpenAIStreamTranslator(
            strip_usage=not ctx.client_wants_usage,
            estimate=lambda deltas: estimated_usage(ctx.body, ctx.endpoint, deltas),
        )

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
        return map_openai_error(status, headers, body, deployment_id)


class OpenAIStreamTranslator:
    """Relays OpenAI SSE bytes as they come, touching only the events that carry usage.

    Complete events are forwarded in the same reads they arrived in; only the usage chunk is
    parsed (found by a byte search), so the per-event cost stays near a memcpy. Until a usage
    chunk arrives, content deltas are counted (one more byte search), so a stream cancelled by
    the client, or one from an upstream that reports no usage, is still charged for what it sent.
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
        if b'"usage":{' in complete or b'"usage": {' in complete:
            complete = self._take_usage(complete)
        if self._reported is None:
            self.deltas += count_deltas(complete)
        if not self.done and b"[DONE]" in complete:
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

    def _take_usage(self, complete: bytes) -> bytes:
        # Events before the first usage object pass as they are, and of the rest only those that
        # carry one are parsed: with include_usage on, every chunk says `"usage":null`.
        at = min(i for i in (complete.find(b'"usage":{'), complete.find(b'"usage": {')) if i >= 0)
        cut = complete.rfind(b"\n\n", 0, at)
        cut = 0 if cut < 0 else cut + 2
        kept: list[bytes] = []
        for event in complete[cut:].split(b"\n\n"):
            if not event:
                continue
            if b'"usage":{' in event or b'"usage": {' in event:
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


def parse_error_envelope(body: bytes) -> dict[str, Any]:
    """The error object from OpenAI's nested shape or older vLLM's flat one; {} if neither."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    error = parsed.get("error", parsed)
    if isinstance(error, str):
        return {"message": error}
    return error if isinstance(error, dict) else {}


def retry_after_seconds(headers: dict[str, str]) -> float | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


def scrub(message: str) -> str:
    """Upstream messages can echo credentials ("Incorrect API key provided: sk-…")."""
    return _SECRETISH.sub("[redacted]", message)[:_MAX_MESSAGE]


def map_openai_error(status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
    error = parse_error_envelope(body)
    message = scrub(str(error.get("message") or f"deployment {deployment_id} answered HTTP {status}"))
    code = error.get("code")
    code = str(code) if code is not None and not isinstance(code, int) else None
    param = error.get("param") if isinstance(error.get("param"), str) else None
    if status in (400, 413, 422):
        if code == "context_length_exceeded" or "context length" in message.lower():
            return ContextLengthExceeded(message, param=param or "messages")
        return InvalidRequest(message, param=param, code=code)
    if status in (401, 403):
        return UpstreamError(
            f"deployment {deployment_id} rejected the gateway's credentials; tell the gateway's operator",
            status=502,
            type="server_error",
            code="upstream_auth_failed",
        )
    if status == 404:
        return UpstreamError(
            f"deployment {deployment_id} does not serve this model or endpoint",
            status=502,
            type="server_error",
            code="upstream_not_found",
        )
    if status == 408:
        return UpstreamTimeout(f"deployment {deployment_id} timed out")
    if status == 429:
        return RateLimited(message, retry_after=retry_after_seconds(headers))
    if status in (502, 503, 504):
        return UpstreamError(message, status=status, type="server_error", code=code,
                             retry_after=retry_after_seconds(headers))
    if status >= 500:
        return UpstreamError(message, status=502, type="server_error", code=code or "upstream_error")
    return UpstreamError(message, status=status, type="invalid_request_error", code=code)
