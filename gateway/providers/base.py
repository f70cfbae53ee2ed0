"""The shape every provider adapter has.

An adapter is pure translation between OpenAI-shaped data and a provider's wire format, plus
the small part that knows URLs, headers and auth. It performs no I/O: `gateway.upstream.client` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import orjson

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError, InvalidRequest
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, StreamTranslator, Usage
from gateway.upstream.client import UpstreamCall


class Provider(Protocol):
    name: str

    def build_call(self, request: ClientRequest, deployment: Deployment) -> UpstreamCall: ...

    def parse_response(self, request: ClientRequest, deployment: Deployment, body: bytes) -> tuple[bytes, Usage | None]:
        """The OpenAI-format body for the client, and the usage it reports."""
        ...

    def stream_translator(self, request: ClientRequest, deployment: Deployment) -> StreamTranslator: ...

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError: ...


@runtime_checkable
class TextAnswers(Protocol):
    """An adapter whose answer to an upload may be plain text (a transcript as text, SRT or VTT):
    the content type it goes to the client with, or None for JSON."""

    def answer_type(self, request: ClientRequest) -> str | None: ...


# What the registry holds: an adapter class (or any callable) that takes the process settings.
ProviderClass = Callable[[Settings], Provider]


@runtime_checkable
class TokenCounter(Protocol):
    """A provider that counts a prompt's tokens itself (Anthropic's `count_tokens`)."""

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError: ...

    def count_tokens_call(self, body: dict[str, Any], deployment: Deployment, request_id: str) -> UpstreamCall:
        """The upstream call that counts the tokens of `body`, an OpenAI chat request."""
        ...

    def parse_count(self, body: bytes) -> int | None:
        """The count in the upstream's answer; None when it has none."""
        ...


def timeouts(deployment: Deployment, default_timeout_s: float, default_connect_s: float) -> tuple[float, float]:
    return (deployment.timeout_s or default_timeout_s, deployment.connect_timeout_s or default_connect_s)


def json_post(deployment: Deployment, url: str, headers: dict[str, str], body: Any, default_timeout_s: float,
              default_connect_s: float) -> UpstreamCall:  # fmt: skip
    """The call most adapters make: `body` as JSON, POSTed with the deployment's timeouts."""
    timeout_s, connect_s = timeouts(deployment, default_timeout_s, default_connect_s)
    return UpstreamCall(
        method="POST",
        url=url,
        headers=headers,
        body=orjson.dumps(body),
        timeout_s=timeout_s,
        connect_timeout_s=connect_s,
        deployment_id=deployment.id or "",
    )


def ask_for_stream_usage(body: dict[str, Any]) -> None:
    """OpenAI-style streams report usage only when asked: ask, keeping the client's other options."""
    options = body.get("stream_options")
    body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}


def upstream_model(deployment: Deployment, public_name: str) -> str:
    return deployment.model or public_name


def unsupported_endpoint(provider: str, endpoint: Endpoint) -> InvalidRequest:
    """What an adapter raises from `build_call` for an endpoint its provider does not have."""
    hint = {
        Endpoint.EMBEDDINGS: "it has no embeddings API",
        Endpoint.COMPLETIONS: "it only has a chat API; use /v1/chat/completions",
    }.get(endpoint, "the gateway does not relay this endpoint to it")
    return InvalidRequest(
        f"This model's provider ({provider}) cannot serve /v1/{endpoint.value}: {hint}.",
        code="unsupported_endpoint",
    )
