"""The client's request as the gateway serves it: one frozen value, built once its body is read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.core.types import Endpoint, Principal
from gateway.core.upload import Upload


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """What the client asked for, as the stages below the proxy read it (the router, the limiter,
    the adapters). The proxy builds it once the caller is known and the body is read and checked,
    and builds a new one when the plugins' `before` hooks change the body (`with_body`).

    Frozen as a value: the body is the client's dict, shared and never copied, so an adapter that
    changes what it sends copies the body first.
    """

    request_id: str
    endpoint: Endpoint
    # The API the client spoke when it is not the endpoint the body is shaped as: "messages" or
    # "responses" (a chat-shaped body); "" for OpenAI's own endpoints.
    api: str
    principal: Principal
    model: str
    # The neutral (OpenAI-shaped) body; for a multipart upload, its form fields.
    body: dict[str, Any]
    # A multipart request's files (audio, an image to edit).
    upload: Upload | None = None
    stream: bool = False
    # Whether the client itself asked for the final usage chunk of a stream.
    client_wants_usage: bool = False
    # The client's `user` field and its x-gateway-tags, for the ledger.
    user: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    # The request's headers, for routing overrides (x-gateway-strategy, x-gateway-deployment-tag).
    headers: Mapping[str, str] = field(default_factory=dict)

    def with_body(self, body: dict[str, Any]) -> ClientRequest:
        """The same request with another body (what a guardrail left of it)."""
        return ClientRequest(self.request_id, self.endpoint, self.api, self.principal, self.model, body, self.upload,
                             self.stream, self.client_wants_usage, self.user, self.tags, self.headers)  # fmt: skip

    @property
    def endpoint_name(self) -> str:
        """The endpoint as the client called it: `messages`, `responses`, or the body's endpoint."""
        return self.api or self.endpoint.value
