"""Anthropic's Messages API (`POST {base_url}/messages`, `x-api-key`, `anthropic-version`).

`base_url` is the API root with its version, e.g. `https://api.anthropic.com/v1`. Deployment
`options`: `anthropic_version` (default 2023-06-01) and `anthropic_beta` (sent as the
`anthropic-beta` header). `max_tokens_default` fills the `max_tokens` Anthropic requires.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Usage
from gateway.providers.anthropic.errors import map_error
from gateway.providers.anthropic.request import DEFAULT_MAX_TOKENS, json_mode, to_anthropic
from gateway.providers.anthropic.response import from_anthropic
from gateway.providers.anthropic.stream import AnthropicStreamTranslator
from gateway.providers.base import json_post, unsupported_endpoint, upstream_model
from gateway.providers.convert import load_upstream_json
from gateway.upstream.client import UpstreamCall

API_VERSION = "2023-06-01"
# What `POST /v1/messages/count_tokens` takes: a Messages request without `max_tokens`, the
# sampling fields and `stream`.
COUNT_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers",
                          "context_management", "output_config"})


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, settings: Settings) -> None:
        self._default_timeout = settings.upstream_timeout_s
        self._default_connect = settings.upstream_connect_timeout_s

    def build_call(self, request: ClientRequest, deployment: Deployment) -> UpstreamCall:
        if request.endpoint is not Endpoint.CHAT:
            raise unsupported_endpoint(self.name, request.endpoint)
        body = to_anthropic(request.body, upstream_model(deployment, request.model),
                            deployment.max_tokens_default or DEFAULT_MAX_TOKENS)
        return self._post(deployment, "messages", body, request.request_id)

    def count_tokens_call(self, body: dict[str, Any], deployment: Deployment, request_id: str) -> UpstreamCall:
        message = to_anthropic(body, upstream_model(deployment, str(body["model"])), 1)
        counted = {key: value for key, value in message.items() if key in COUNT_FIELDS}
        return self._post(deployment, "messages/count_tokens", counted, request_id)

    def parse_count(self, body: bytes) -> int | None:
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        tokens = answer.get("input_tokens") if isinstance(answer, dict) else None
        return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0 else None

    def _post(self, deployment: Deployment, path: str, body: dict[str, Any], request_id: str) -> UpstreamCall:
        options = deployment.options
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": str(options.get("anthropic_version") or API_VERSION),
            "X-Request-Id": request_id,
        }
        if options.get("anthropic_beta"):
            headers["anthropic-beta"] = str(options["anthropic_beta"])
        if deployment.api_key is not None:
            headers["x-api-key"] = deployment.api_key.get_secret_value()
        return json_post(deployment, f"{deployment.base_url}/{path}", headers, body, self._default_timeout,
                         self._default_connect)

    def parse_response(self, request: ClientRequest, deployment: Deployment, body: bytes) -> tuple[bytes, Usage | None]:
        message = load_upstream_json(body, deployment)
        reply, usage = from_anthropic(message, int(time.time()), json_mode(request.body))
        return orjson.dumps(reply), usage

    def stream_translator(self, request: ClientRequest, deployment: Deployment) -> AnthropicStreamTranslator:
        return AnthropicStreamTranslator(
            request.client_wants_usage, int(time.time()), request.model, json_mode(request.body)
        )

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
        return map_error(status, headers, body, deployment_id)
