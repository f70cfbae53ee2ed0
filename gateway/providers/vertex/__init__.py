"""Google Vertex AI: Gemini models and Anthropic's Claude models served on Vertex (the `vertex` extra).

    POST {base_url}/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:generateContent
         (streams: :streamGenerateContent?alt=sse); bodies, answers and errors are the Gemini API's
    POST .../publishers/anthropic/models/{model}:rawPredict (streams: :streamRawPredict); bodies are
         Anthropic's Messages without `model` and with `anthropic_version: vertex-2023-10-16`

`region` is the Vertex location (`us-central1`, `europe-west4`, `global`...); `options.project`
the Google Cloud project (else `GOOGLE_CLOUD_PROJECT`); `base_url` defaults to the location's
endpoint; `options.publisher` is `google` or `anthropic` (default: `anthropic` for models named
`claude*`). Tokens come from google-auth (auth.py) as `Authorization: Bearer`.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, StreamTranslator, Usage
from gateway.providers.anthropic import AnthropicProvider
from gateway.providers.anthropic.errors import map_error as anthropic_error
from gateway.providers.anthropic.request import DEFAULT_MAX_TOKENS, to_anthropic
from gateway.providers.base import json_post, unsupported_endpoint, upstream_model
from gateway.providers.gemini import GeminiProvider, model_id
from gateway.providers.gemini.errors import map_error as gemini_error
from gateway.providers.gemini.request import to_gemini
from gateway.providers.vertex.auth import Tokens, google_auth_missing
from gateway.upstream.client import UpstreamCall

ANTHROPIC_VERSION = "vertex-2023-10-16"


def publisher(deployment: Deployment, model: str) -> str:
    chosen = deployment.options.get("publisher")
    if chosen in ("google", "anthropic"):
        return str(chosen)
    return "anthropic" if model.startswith("claude") else "google"


class VertexProvider:
    name = "vertex"

    def __init__(self, settings: Settings) -> None:
        self._default_timeout = settings.upstream_timeout_s
        self._default_connect = settings.upstream_connect_timeout_s
        # Answers, streams and errors are the Gemini API's or Anthropic's: their adapters read them.
        self._gemini = GeminiProvider(settings)
        self._anthropic = AnthropicProvider(settings)
        self.tokens = Tokens()

    @staticmethod
    def configure(deployment: Deployment) -> str | None:
        """At config load: the project and base URL filled in, or what is missing."""
        missing = google_auth_missing()
        if missing is not None:
            return missing
        if not deployment.region:
            return "region: required for provider 'vertex' (a Vertex AI location: us-central1, global...)"
        project = deployment.options.get("project") or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            return "options.project: required for provider 'vertex' (or set GOOGLE_CLOUD_PROJECT)"
        deployment.options["project"] = str(project)
        if publisher(deployment, deployment.model or "") not in ("google", "anthropic"):
            return "options.publisher: must be google or anthropic"
        if not deployment.base_url:
            host = "aiplatform.googleapis.com"
            deployment.base_url = "https://" + (host if deployment.region == "global" else
                                                f"{deployment.region}-{host}")
        return None

    def build_call(self, request: ClientRequest, deployment: Deployment) -> UpstreamCall:
        if request.endpoint is not Endpoint.CHAT:
            raise unsupported_endpoint(self.name, request.endpoint)
        model = model_id(deployment, request.model)
        path = (f"{deployment.base_url}/v1/projects/{quote(str(deployment.options['project']), safe='')}"
                f"/locations/{quote(deployment.region or '', safe='')}/publishers/")
        if publisher(deployment, model) == "anthropic":
            body = to_anthropic(request.body, upstream_model(deployment, request.model),
                                deployment.max_tokens_default or DEFAULT_MAX_TOKENS)
            del body["model"]  # the URL names it
            body["anthropic_version"] = str(deployment.options.get("anthropic_version") or ANTHROPIC_VERSION)
            method = "streamRawPredict" if request.stream else "rawPredict"
            url = f"{path}anthropic/models/{quote(model, safe='@.-_')}:{method}"
        else:
            body = to_gemini(request.body)
            method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
            url = f"{path}google/models/{quote(model, safe='.-_')}:{method}"
        credentials_file = deployment.options.get("credentials_file")
        token = self.tokens.source(str(credentials_file) if credentials_file else None).token()
        headers = {"Content-Type": "application/json", "Authorization": "Bearer " + token,
                   "X-Request-Id": request.request_id}
        return json_post(deployment, url, headers, body, self._default_timeout, self._default_connect)

    def _adapter(self, request: ClientRequest, deployment: Deployment) -> GeminiProvider | AnthropicProvider:
        if publisher(deployment, model_id(deployment, request.model)) == "anthropic":
            return self._anthropic
        return self._gemini

    def parse_response(self, request: ClientRequest, deployment: Deployment, body: bytes) -> tuple[bytes, Usage | None]:
        return self._adapter(request, deployment).parse_response(request, deployment, body)

    def stream_translator(self, request: ClientRequest, deployment: Deployment) -> StreamTranslator:
        return self._adapter(request, deployment).stream_translator(request, deployment)

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
        # Claude's own errors come in Anthropic's envelope; Vertex's (auth, quota) in Google's.
        if b'"type":"error"' in body or b'"type": "error"' in body:
            return anthropic_error(status, headers, body, deployment_id)
        return gemini_error(status, headers, body, deployment_id)
