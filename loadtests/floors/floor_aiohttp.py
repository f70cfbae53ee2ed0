"""The pass-through floor with aiohttp: the least a Python proxy on this stack can cost.

FLOOR_UPSTREAM=http://127.0.0.1:9000/v1 uvicorn --factory floor_aiohttp:create_app --app-dir loadtests/floors
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM_HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer floor"}


def create_app() -> Starlette:
    upstream = os.environ["FLOOR_UPSTREAM"].rstrip("/") + "/chat/completions"
    pool_size = int(os.environ.get("FLOOR_POOL_SIZE", "256"))
    session: aiohttp.ClientSession | None = None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal session
        connector = aiohttp.TCPConnector(limit=pool_size, limit_per_host=pool_size)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            yield

    async def chat_completions(request: Request) -> Response:
        assert session is not None
        body = await request.body()
        upstream_response = await session.post(upstream, data=body, headers=UPSTREAM_HEADERS)
        content_type = upstream_response.headers.get("Content-Type", "application/json")
        if not orjson.loads(body).get("stream"):
            async with upstream_response:
                content = await upstream_response.read()
            return Response(content, upstream_response.status, media_type=content_type)

        async def relay() -> AsyncIterator[bytes]:
            async with upstream_response:
                async for chunk in upstream_response.content.iter_any():
                    yield chunk

        return StreamingResponse(relay(), upstream_response.status, media_type=content_type)

    return Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])], lifespan=lifespan)
