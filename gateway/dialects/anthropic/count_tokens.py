"""`POST /v1/messages/count_tokens`: a Messages request's input tokens, before sending it.

The body is read into the neutral request like `/v1/messages` (so it counts what would be sent).
A model with a deployment whose provider counts tokens itself (Anthropic) is asked there, at the
first such deployment of its group; any other model gets the gateway's own estimate, the one
admission reserves by (characters / 4, plus the tool definitions), and says so in the
`x-gateway-token-count` header (`upstream` or `estimate`). Nothing is generated, so no limit is
reserved and no ledger row is written; the key and its allowed models are checked as on
`/v1/messages`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.accounting.limits.estimate import CHARS_PER_TOKEN, prompt_tokens
from gateway.config.file import Deployment
from gateway.core.errors import GatewayError, UpstreamError
from gateway.core.types import Endpoint
from gateway.dialects.anthropic.request import to_openai
from gateway.dialects.anthropic.response import error_from_gateway
from gateway.edge.body import read_body
from gateway.identity.auth import client_address
from gateway.pipeline.proxy import Proxy
from gateway.providers.base import TokenCounter

SOURCE_HEADER = "x-gateway-token-count"


def count_tokens_endpoint(proxy: Proxy) -> Callable[[Request], Awaitable[Response]]:
    async def count_tokens(request: Request) -> Response:
        request_id = request.scope["state"]["request_id"]
        headers = {"request-id": request_id, "x-request-id": request_id}
        try:
            principal = await proxy.auth.authenticate(request.headers, client_address(request))
            body = to_openai(await read_body(
                request, proxy.max_body_bytes, proxy.timeouts.body_s, proxy.timeouts.body_idle_s
            ), counting=True)
            group = proxy.router.group(body["model"])  # an unknown model: 404
            proxy.auth.check_model(principal, body["model"])
            tokens, source = await _count(proxy, group.deployments, body, request_id)
        except GatewayError as error:
            return Response(error_from_gateway(error, request_id), status_code=error.status,
                            headers={**error.headers(), **headers}, media_type="application/json")
        return Response(orjson.dumps({"input_tokens": tokens}), headers={**headers, SOURCE_HEADER: source},
                        media_type="application/json")

    return count_tokens


async def _count(proxy: Proxy, deployments: list[Deployment], body: dict[str, Any], request_id: str) -> tuple[int, str]:
    for deployment in deployments:
        provider = proxy.providers.get(deployment.provider)
        if isinstance(provider, TokenCounter):
            call = provider.count_tokens_call(body, deployment, request_id)
            response = await proxy.upstream.send(call)
            if response.status != 200:
                raise provider.map_error(response.status, response.headers, response.body, deployment.id or "")
            tokens = provider.parse_count(response.body)
            if tokens is None:
                raise UpstreamError(f"deployment {deployment.id} answered count_tokens without input_tokens",
                                    status=502, type="server_error", code="bad_upstream_response")
            return tokens, "upstream"
    return estimate(body), "estimate"


def estimate(body: dict[str, Any]) -> int:
    """The messages as admission sizes them, and the tool definitions, which count as input too."""
    tools = body.get("tools")
    tool_chars = len(orjson.dumps(tools)) if tools else 0
    return prompt_tokens(body, Endpoint.CHAT) + math.ceil(tool_chars / CHARS_PER_TOKEN)
