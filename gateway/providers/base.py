"""The shape every provider adapter has.

An adapter is pure translation between OpenAI-shaped data and a provider's wire format, plus
the small part that knows URLs, headers and auth. It performs no I/O: `gateway.upstream` does.
"""

from __future__ import annotations

from typing import Protocol

from gateway.config import Deployment
from gateway.context import Endpoint, RequestContext, Usage
from gateway.errors import GatewayError, InvalidRequest
from gateway.upstream import UpstreamCall


class StreamTranslator(Protocol):
    """Turns upstream stream bytes into OpenAI SSE bytes, noting usage on the way."""

    usage: Usage | None
    done: bool

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class Provider(Protocol):
    name: str

    def build_call(self, ctx: RequestContext, deployment: Deployment) -> UpstreamCall: ...

    def parse_response(self, ctx: RequestContext, body: bytes) -> tuple[bytes, Usage | None]:
        """The OpenAI-format body for the client, and the usage it reports."""
        ...

    def stream_translator(self, ctx: RequestContext) -> StreamTranslator: ...

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError: ...


def timeouts(deployment: Deployment, default_timeout_s: float, default_connect_s: float) -> tuple[float, float]:
    return (deployment.timeout_s or default_timeout_s, deployment.connect_timeout_s or default_connect_s)


def upstream_model(deployment: Deployment, public_name: str) -> str:
    return deployment.model or public_name


def unsupported_endpoint(provider: str, endpoint: Endpoint) -> InvalidRequest:
    """What an adapter raises from `build_call` for an endpoint its provider does not have."""
    hint = {
        Endpoint.EMBEDDINGS: "it has no embeddings API",
        Endpoint.COMPLETIONS: "it only has a chat API; use /v1/chat/completions",
    }.get(endpoint, "it does not serve this endpoint")
    return InvalidRequest(
        f"This model's provider ({provider}) cannot serve /v1/{endpoint.value}: {hint}.",
        code="unsupported_endpoint",
    )
