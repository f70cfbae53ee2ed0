"""Azure OpenAI: OpenAI's wire format on deployment URLs.

    POST {base_url}/openai/deployments/{deployment}/{chat/completions|completions|embeddings}?api-version=…

`base_url` is the resource endpoint (`https://<resource>.openai.azure.com`), the deployment's
`model` is the Azure deployment name, `api_version` the dated API version. The key goes in the
`api-key` header. Bodies and errors are OpenAI's; streams may open with a chunk whose `choices`
is empty and which carries only `prompt_filter_results`: it is dropped, so clients that read
`choices[0]` of every chunk keep working.
"""

from __future__ import annotations

from urllib.parse import quote

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Usage
from gateway.providers.azure.stream import AzureStreamTranslator
from gateway.providers.base import ask_for_stream_usage, json_post, unsupported_endpoint, upstream_model
from gateway.providers.errors import map_openai_error
from gateway.providers.openai import OpenAIProvider
from gateway.providers.units import BinaryRelay
from gateway.upstream.client import UpstreamCall

# The GA version current when this was written; set `api_version` per deployment to pin another.
DEFAULT_API_VERSION = "2024-10-21"
# Uploads are not relayed to Azure (its audio and image-edit deployments are not wired here), and
# Azure OpenAI has no moderations or rerank API.
_NOT_RELAYED = frozenset({Endpoint.TRANSCRIPTIONS, Endpoint.TRANSLATIONS, Endpoint.IMAGE_EDITS, Endpoint.MODERATIONS,
                          Endpoint.RERANK})


class AzureProvider:
    name = "azure"

    def __init__(self, settings: Settings) -> None:
        self._openai = OpenAIProvider(settings)
        self._default_timeout = settings.upstream_timeout_s
        self._default_connect = settings.upstream_connect_timeout_s

    def build_call(self, request: ClientRequest, deployment: Deployment) -> UpstreamCall:
        if request.endpoint in _NOT_RELAYED:
            raise unsupported_endpoint(self.name, request.endpoint)
        body = dict(request.body)
        name = upstream_model(deployment, request.model)
        # The deployment in the URL picks the model; `model` in the body is ignored there.
        body["model"] = name
        if request.stream and request.endpoint is not Endpoint.EMBEDDINGS:
            ask_for_stream_usage(body)
        headers = {"Content-Type": "application/json", "X-Request-Id": request.request_id}
        if deployment.api_key is not None:
            headers["api-key"] = deployment.api_key.get_secret_value()
        version = quote(deployment.api_version or DEFAULT_API_VERSION, safe="")
        url = (f"{deployment.base_url}/openai/deployments/{quote(name, safe='')}/{request.endpoint.value}"
                f"?api-version={version}")
        return json_post(deployment, url, headers, body, self._default_timeout, self._default_connect)

    def answer_type(self, request: ClientRequest) -> str | None:
        return self._openai.answer_type(request)

    def parse_response(self, request: ClientRequest, deployment: Deployment, body: bytes) -> tuple[bytes, Usage | None]:
        return self._openai.parse_response(request, deployment, body)

    def stream_translator(self, request: ClientRequest, deployment: Deployment) -> AzureStreamTranslator | BinaryRelay:
        inner = self._openai.stream_translator(request, deployment)
        return inner if isinstance(inner, BinaryRelay) else AzureStreamTranslator(inner)

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
        # Azure's envelope is OpenAI's (its 429s carry `code: "429"` and no type; content
        # filtering is a 400 with `code: "content_filter"`): the OpenAI mapping fits.
        return map_openai_error(status, headers, body, deployment_id)
