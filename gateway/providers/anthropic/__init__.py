"""Anthropic's Messages API (`POST {base_url}/messages`, `x-api-key`, `anthropic-version`).

`base_url` is the API root with its version, e.g. `https://api.anthropic.com/v1`. Deployment
`options`: `anthropic_version` (default 2023-06-01) and `anthropic_beta` (sent as the
`anthropic-beta` header). `max_tokens_default` fills the `max_tokens` Anthropic requires.
"""

from __future__ import annotations

import time

import orjson

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError
from gateway.core.types import Endpoint, Usage
from gateway.pipeline.context import RequestContext
from gateway.providers.anthropic.errors import map_error
from gateway.providers.anthropic.request import DEFAULT_MAX_TOKENS, to_anthropic
from gateway.providers.anthropic.response import from_anthropic
from gateway.providers.anthropic.stream import AnthropicStreamTranslator
from gateway.providers.base import json_post, unsupported_endpoint, upstream_model
from gateway.providers.convert import load_upstream_json
from gateway.upstream.client import UpstreamCall

API_VERSION = "2023-06-01"


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, settings: Settings) -> None:
        self._default_timeout = settings.upstream_timeout_s
        self._default_connect = settings.upstream_connect_timeout_s

    def build_call(self, ctx: RequestContext, deployment: Deployment) -> UpstreamCall:
        if ctx.endpoint is not Endpoint.CHAT:
            raise unsupported_endpoint(self.name, ctx.endpoint)
        body = to_anthropic(ctx.body, upstream_model(deployment, ctx.model),
                            deployment.max_tokens_default or DEFAULT_MAX_TOKENS)
        options = deployment.options
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": str(options.get("anthropic_version") or API_VERSION),
            "X-Request-Id": ctx.request_id,
        }
        if options.get("anthropic_beta"):
            headers["anthropic-beta"] = str(options["anthropic_beta"])
        if deployment.api_key is not None:
            headers["x-api-key"] = deployment.api_key.get_secret_value()
        url = f"{deployment.base_url}/messages"
        return json_post(deployment, url, headers, body, self._default_timeout, self._default_connect)

    def parse_response(self, ctx: RequestContext, body: bytes) -> tuple[bytes, Usage | None]:
        message = load_upstream_json(ctx, body)
        reply, usage = from_anthropic(message, int(time.time()))
        return orjson.dumps(reply), usage

    def stream_translator(self, ctx: RequestContext) -> AnthropicStreamTranslator:
        return AnthropicStreamTranslator(ctx.client_wants_usage, int(time.time()), ctx.model)

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
        return map_error(status, headers, body, deployment_id)
