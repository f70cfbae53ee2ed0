"""Google's Gemini API (`{base_url}/models/{model}:generateContent`, the `x-goog-api-key` header).

`base_url` is the API root with its version, e.g.
`https://generativelanguage.googleapis.com/v1beta`. Chat goes to `generateContent`, streams
to `streamGenerateContent?alt=sse`, embeddings to `embedContent` (one input) or
`batchEmbedContents` (several). Legacy completions are refused with a 400.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import orjson

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Usage
from gateway.providers.base import json_post, unsupported_endpoint, upstream_model
from gateway.providers.convert import load_upstream_json
from gateway.providers.gemini.embeddings import from_gemini_embeddings, to_gemini_embeddings
from gateway.providers.gemini.errors import map_error
from gateway.providers.gemini.request import to_gemini
from gateway.providers.gemini.response import from_gemini
from gateway.providers.gemini.stream import GeminiStreamTranslator
from gateway.upstream.client import UpstreamCall


def model_id(deployment: Deployment, public_name: str) -> str:
    """Gemini names models `models/<id>`; the config may give either form."""
    return upstream_model(deployment, public_name).removeprefix("models/")


class GeminiProvider:
    name = "gemini"

    def __init__(self, settings: Settings) -> None:
        self._default_timeout = settings.upstream_timeout_s
        self._default_connect = settings.upstream_connect_timeout_s

    def build_call(self, request: ClientRequest, deployment: Deployment) -> UpstreamCall:
        model = model_id(deployment, request.model)
        if request.endpoint is Endpoint.CHAT:
            body = to_gemini(request.body)
            method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        elif request.endpoint is Endpoint.EMBEDDINGS:
            method, body = to_gemini_embeddings(request.body, model)
        else:
            raise unsupported_endpoint(self.name, request.endpoint)
        headers = {"Content-Type": "application/json", "X-Request-Id": request.request_id}
        if deployment.api_key is not None:
            # The header, not `?key=`: a URL can end up in logs.
            headers["x-goog-api-key"] = deployment.api_key.get_secret_value()
        url = f"{deployment.base_url}/models/{quote(model, safe='.-_')}:{method}"
        return json_post(deployment, url, headers, body, self._default_timeout, self._default_connect)

    def parse_response(self, request: ClientRequest, deployment: Deployment, body: bytes) -> tuple[bytes, Usage | None]:
        response = load_upstream_json(body, deployment)
        model = model_id(deployment, request.model)
        if request.endpoint is Endpoint.EMBEDDINGS:
            reply, usage = from_gemini_embeddings(response, request.body, model)
            return orjson.dumps(reply), usage
        answer, chat_usage = from_gemini(response, model, int(time.time()))
        return orjson.dumps(answer), chat_usage

    def stream_translator(self, request: ClientRequest, deployment: Deployment) -> GeminiStreamTranslator:
        model = model_id(deployment, request.model)
        return GeminiStreamTranslator(request.client_wants_usage, int(time.time()), model)

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
        return map_error(status, headers, body, deployment_id)
