"""vLLM's OpenAI-compatible server, plus what it says about its own load.

Requests, responses and streams are OpenAI's (the `openai` adapter's code). Errors are too,
except that `code` is an integer and, before v0.10.1, the envelope was flat; the OpenAI error
mapping reads both.

For the router, the adapter is a load probe (gateway.routing.scraper.LoadProbe): it describes the
request for a replica's `/metrics` page and reads the page (metrics.py).
"""

from __future__ import annotations

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError
from gateway.core.request import ClientRequest
from gateway.core.types import ReportedLoad, Usage
from gateway.providers.errors import map_openai_error
from gateway.providers.openai import OpenAIProvider
from gateway.providers.openai.stream import OpenAIStreamTranslator
from gateway.providers.units import BinaryRelay
from gateway.providers.vllm.metrics import metrics_call, parse_metrics
from gateway.upstream.client import UpstreamCall


class VLLMProvider:
    name = "vllm"

    def __init__(self, settings: Settings) -> None:
        self._openai = OpenAIProvider(settings)

    def build_call(self, request: ClientRequest, deployment: Deployment) -> UpstreamCall:
        return self._openai.build_call(request, deployment)

    def answer_type(self, request: ClientRequest) -> str | None:
        return self._openai.answer_type(request)

    def parse_response(self, request: ClientRequest, deployment: Deployment, body: bytes) -> tuple[bytes, Usage | None]:
        return self._openai.parse_response(request, deployment, body)

    def stream_translator(self, request: ClientRequest, deployment: Deployment) -> OpenAIStreamTranslator | BinaryRelay:
        return self._openai.stream_translator(request, deployment)

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
        return map_openai_error(status, headers, body, deployment_id)

    def metrics_call(self, deployment: Deployment) -> UpstreamCall:
        return metrics_call(deployment)

    def parse_metrics(self, text: str) -> ReportedLoad | None:
        return parse_metrics(text)
