"""The pass-through floor with httpx: the same app as floor_aiohttp, on the other client.

FLOOR_UPSTREAM=http://127.0.0.1:9000/v1 uvicorn --factory floor_httpx:create_app --app-dir loadtests/floors
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM_HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer floor"}


def create_app() -> Starlette:
    upstream = os.environ["FLOOR_UPSTREAM"].rstrip("/") + "/chat/completions"
    pool_size = int(os.environ.get("FLOOR_POOL_SIZE", "256"))
    client: httpx.AsyncClient | None = None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal client
        # httpx keeps only 20 idle connections by default; size it like the aiohttp floor.
        limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
        async with httpx.AsyncClient(limits=limits, timeout=60.0, trust_env=False) as client:
            yield

    async def chat_completions(request: Request) -> Response:
        assert client is not None
        body = await request.body()
        upstream_request = client.build_request("POST", upstream, content=body, headers=UPSTREAM_HEADERS)
        upstream_response = await client.send(upstream_request, stream=True)
        content_type = upstream_response.headers.get("Content-Type", "application/json")
        if not orjson.loads(body).get("stream"):
            try:
                content = await upstream_response.aread()
            finally:
                await upstream_response.aclose()
            return Response(content, upstream_response.status_code, media_type=content_type)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream_response.aiter_raw():
                    yield chunk
            finally:
                await upstream_response.aclose()

        return StreamingResponse(relay(), upstream_response.status_code, media_type=content_type)

    return Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])], lifespan=lifespan)
