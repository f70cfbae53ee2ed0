"""Cohere's v2 chat API as an llm-gateway provider (`POST {base_url}/chat`, `Authorization: Bearer`).

`base_url` is the API root with its version: `https://api.cohere.com/v2`. Only chat is adapted;
embeddings and legacy completions get the gateway's clear 400.
"""

from __future__ import annotations

import time

import orjson

from cohere_provider.errors import map_error
from cohere_provider.request import to_cohere
from cohere_provider.response import from_cohere
from cohere_provider.stream import CohereStreamTranslator
from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Usage
from gateway.providers.base import json_post, unsupported_endpoint, upstream_model
from gateway.providers.convert import load_upstream_json
from gateway.upstream.client import UpstreamCall


class CohereProvider:
    name = "cohere"

    def __init__(self, settings: Settings) -> None:
        self._default_timeout = settings.upstream_timeout_s
        self._default_connect = settings.upstream_connect_timeout_s

    def build_call(self, request: ClientRequest, deployment: Deployment) -> UpstreamCall:
        if request.endpoint is not Endpoint.CHAT:
            raise unsupported_endpoint(self.name, request.endpoint)
        body = to_cohere(request.body, upstream_model(deployment, request.model))
        headers = {"Content-Type": "application/json", "Accept": "application/json", "X-Request-Id": request.request_id,
                   "X-Client-Name": "llm-gateway"}
        if deployment.api_key is not None:
            headers["Authorization"] = "Bearer " + deployment.api_key.get_secret_value()
        return json_post(deployment, f"{deployment.base_url}/chat", headers, body, self._default_timeout,
                         self._default_connect)  # fmt: skip

    def parse_response(self, request: ClientRequest, deployment: Deployment, body: bytes) -> tuple[bytes, Usage | None]:
        model = upstream_model(deployment, request.model)
        reply, usage = from_cohere(load_upstream_json(body, deployment), model, int(time.time()))
        return orjson.dumps(reply), usage

    def stream_translator(self, request: ClientRequest, deployment: Deployment) -> CohereStreamTranslator:
        model = upstream_model(deployment, request.model)
        return CohereStreamTranslator(request.client_wants_usage, int(time.time()), model)

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
        return map_error(status, headers, body, deployment_id)


__all__ = ["CohereProvider"]
