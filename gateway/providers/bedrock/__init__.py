"""AWS Bedrock through the Converse and ConverseStream APIs, signed with SigV4 (the `bedrock` extra).

    POST {base_url}/model/{modelId}/converse          JSON in, JSON out
    POST {base_url}/model/{modelId}/converse-stream   JSON in, AWS event-stream frames out

`model` is the Bedrock model id or inference profile (`anthropic.claude-3-5-haiku-20241022-v1:0`,
`us.amazon.nova-pro-v1:0`, an ARN), `region` the AWS region (else `AWS_REGION` or
`AWS_DEFAULT_REGION`), and `base_url` defaults to `https://bedrock-runtime.{region}.amazonaws.com`.
Requests are signed with credentials from the standard AWS chain (signing.py); a deployment with
`api_key_env` (a Bedrock API key, e.g. `AWS_BEARER_TOKEN_BEDROCK`) sends it as a bearer token
instead. `options.aws_profile` picks a shared-config profile. `max_tokens_default` fills
`inferenceConfig.maxTokens` when a request has none.
"""

from __future__ import annotations

import os
import time
from urllib.parse import quote

import orjson

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Usage
from gateway.providers.base import timeouts, unsupported_endpoint, upstream_model
from gateway.providers.bedrock.errors import map_error
from gateway.providers.bedrock.request import to_converse
from gateway.providers.bedrock.response import from_converse
from gateway.providers.bedrock.signing import Signer, botocore_missing
from gateway.providers.bedrock.stream import BedrockStreamTranslator
from gateway.providers.convert import load_upstream_json
from gateway.providers.estimate import estimated_usage
from gateway.upstream.client import UpstreamCall


def region_of(deployment: Deployment) -> str | None:
    return deployment.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


class BedrockProvider:
    name = "bedrock"

    def __init__(self, settings: Settings) -> None:
        self._default_timeout = settings.upstream_timeout_s
        self._default_connect = settings.upstream_connect_timeout_s
        self._signer = Signer()

    @staticmethod
    def configure(deployment: Deployment) -> str | None:
        """At config load: the region and base URL filled in, or what is missing."""
        missing = botocore_missing()  # signing, and decoding streams even with an API key
        if missing is not None:
            return missing
        region = region_of(deployment)
        if region is None:
            return "region: required for provider 'bedrock' (or set AWS_REGION)"
        deployment.region = region
        if not deployment.base_url:
            deployment.base_url = f"https://bedrock-runtime.{region}.amazonaws.com"
        return None

    def build_call(self, request: ClientRequest, deployment: Deployment) -> UpstreamCall:
        if request.endpoint is not Endpoint.CHAT:
            raise unsupported_endpoint(self.name, request.endpoint)
        body = orjson.dumps(to_converse(request.body, deployment.max_tokens_default))
        action = "converse-stream" if request.stream else "converse"
        url = f"{deployment.base_url}/model/{quote(upstream_model(deployment, request.model), safe='')}/{action}"
        headers = {"Content-Type": "application/json"}
        if request.stream:
            headers["Accept"] = "application/vnd.amazon.eventstream"
        if deployment.api_key is not None:
            headers["Authorization"] = "Bearer " + deployment.api_key.get_secret_value()
        else:
            profile = deployment.options.get("aws_profile")
            headers = self._signer.sign(url, body, headers, deployment.region or "",
                                        str(profile) if profile else None)
        headers["X-Request-Id"] = request.request_id  # after signing: not part of the signature
        timeout_s, connect_s = timeouts(deployment, self._default_timeout, self._default_connect)
        return UpstreamCall(method="POST", url=url, headers=headers, body=body, timeout_s=timeout_s,
                            connect_timeout_s=connect_s, deployment_id=deployment.id or "", exact_url=True)

    def parse_response(self, request: ClientRequest, deployment: Deployment, body: bytes) -> tuple[bytes, Usage | None]:
        response = load_upstream_json(body, deployment)
        reply, usage = from_converse(response, f"chatcmpl-{request.request_id}", request.model, int(time.time()))
        return orjson.dumps(reply), usage

    def stream_translator(self, request: ClientRequest, deployment: Deployment) -> BedrockStreamTranslator:
        return BedrockStreamTranslator(request.client_wants_usage, f"chatcmpl-{request.request_id}", request.model,
                                       int(time.time()),
                                       estimate=lambda deltas: estimated_usage(request.body, request.endpoint, deltas))

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
        return map_error(status, headers, body, deployment_id)
