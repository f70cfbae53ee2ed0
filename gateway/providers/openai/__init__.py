"""Any OpenAI-compatible server: OpenAI itself, vLLM, Ollama, Groq, Together, another gateway.

The request passes through untouched except for the model name and, on streams, asking for
the usage chunk so accounting sees real numbers. Responses pass through as bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError, UpstreamError
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Usage
from gateway.core.upload import BodyFactory
from gateway.providers.base import ask_for_stream_usage, timeouts, upstream_model
from gateway.providers.errors import map_openai_error
from gateway.providers.estimate import completion_tokens, estimated_usage
from gateway.providers.openai.stream import OpenAIStreamTranslator
from gateway.providers.units import TEXT_FORMATS, BinaryRelay, speech_usage, units_usage
from gateway.upstream.client import UpstreamCall

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

    def build_call(self, request: ClientRequest, deployment: Deployment) -> UpstreamCall:
        target = self._targets.get((id(deployment), request.endpoint))
        if target is None:
            target = self._targets[(id(deployment), request.endpoint)] = self._target(deployment, request.endpoint)
        body = self.request_body(request, deployment)
        headers = {**target.headers, "X-Request-Id": request.request_id}
        payload: bytes | BodyFactory
        if request.upload is not None:
            # The form is written from the body, so what changed it (the model name, a guardrail) counts.
            fields = [(name, str(item)) for name, value in body.items()
                      for item in (value if isinstance(value, list) else [value])]
            headers["Content-Type"], length, payload = request.upload.form(fields)
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

    def request_body(self, request: ClientRequest, deployment: Deployment) -> dict[str, Any]:
        """The client's body with the upstream's model name and, on streams, a request for usage."""
        body = dict(request.body)
        body["model"] = upstream_model(deployment, request.model)
        if request.stream and request.endpoint is not Endpoint.EMBEDDINGS:
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

    def answer_type(self, request: ClientRequest) -> str | None:
        return TEXT_FORMATS.get(str(request.body.get("response_format"))) if request.upload is not None else None

    def parse_response(self, request: ClientRequest, deployment: Deployment, body: bytes) -> tuple[bytes, Usage | None]:
        if self.answer_type(request) is not None:
            return body, units_usage(request.endpoint, request.body, None)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"deployment {deployment.id} returned a body that is not JSON",
                status=502,
                type="server_error",
                code="bad_upstream_response",
            ) from None
        if request.endpoint not in _TOKEN_ENDPOINTS:
            return body, units_usage(request.endpoint, request.body, parsed)
        usage = parsed.get("usage") if isinstance(parsed, dict) else None
        if isinstance(usage, dict):
            return body, Usage.from_openai(usage)
        # No usage at all (some self-hosted servers): estimated, and the ledger row says so.
        return body, estimated_usage(request.body, request.endpoint, completion_tokens(parsed))

    def stream_translator(self, request: ClientRequest, deployment: Deployment) -> OpenAIStreamTranslator | BinaryRelay:
        if request.endpoint is Endpoint.SPEECH:
            return BinaryRelay(speech_usage(request.body))
        return OpenAIStreamTranslator(
            strip_usage=not request.client_wants_usage,
            estimate=lambda deltas: estimated_usage(request.body, request.endpoint, deltas),
        )

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
        return map_openai_error(status, headers, body, deployment_id)
