"""The app factory: builds every dependency once and maps paths to handlers.

The whole route table is at the bottom of `create_app`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.auth import MasterKeyAuth
from gateway.config import Config, ConfigError, load_config
from gateway.context import Endpoint
from gateway.errors import GatewayError, InternalError, MethodNotAllowed, NotFound
from gateway.middleware.inflight import InflightLimitMiddleware
from gateway.middleware.request_id import RequestIdMiddleware
from gateway.pricing import PriceBook, load_price_table
from gateway.providers import PROVIDERS
from gateway.proxy import Proxy, StreamCall
from gateway.responses import error_response, json_response
from gateway.routing.router import Router
from gateway.settings import Settings
from gateway.upstream import UpstreamClient

log = logging.getLogger("gateway")

CONFIG_FILE_ENV = "GATEWAY_CONFIG_FILE"


def create_app(config: Config, settings: Settings) -> Starlette:
    if settings.master_key is None:
        raise ConfigError("config error: settings.master_key: required (set GATEWAY_MASTER_KEY)")
    upstream = UpstreamClient(settings.upstream_max_connections)
    router = Router(config.models)
    proxy = Proxy(
        auth=MasterKeyAuth(settings.master_key),
        router=router,
        providers={name: cls(settings) for name, cls in PROVIDERS.items()},
        upstream=upstream,
        max_body_bytes=settings.max_body_bytes,
        prices=PriceBook(load_price_table()),
    )
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await upstream.start()
        try:
            yield
        finally:
            await upstream.close()

    def proxied(endpoint: Endpoint):  # type: ignore[no-untyped-def]
        async def handler(request: Request) -> Response | StreamCall:
            return await proxy.handle(request, endpoint)

        return handler

    def model_object(name: str) -> dict[str, object]:
        return {"id": name, "object": "model", "created": created, "owned_by": "gateway"}

    async def list_models(request: Request) -> Response:
        await proxy.auth.authenticate(request.headers)
        return json_response({"object": "list", "data": [model_object(g.name) for g in router.groups]})

    async def get_model(request: Request) -> Response:
        await proxy.auth.authenticate(request.headers)
        return json_response(model_object(router.group(request.path_params["model"]).name))

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = {"config": True, "upstream_client": upstream.started}
        ready = all(checks.values())
        return json_response({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)

    routes = [
        Route("/v1/chat/completions", proxied(Endpoint.CHAT), methods=["POST"]),
        Route("/v1/completions", proxied(Endpoint.COMPLETIONS), methods=["POST"]),
        Route("/v1/embeddings", proxied(Endpoint.EMBEDDINGS), methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(InflightLimitMiddleware, limit=settings.max_inflight,
                       retry_after_s=settings.overload_retry_after_s),
        ],
        exception_handlers={
            GatewayError: _gateway_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}."))
    return error_response(NotFound(f"Unknown path {request.url.path}.", code="unknown_url"))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # Runs outside the request-id middleware, so it sets the header itself. Starlette logs the
    # traceback to the server log after this; the client gets no detail.
    response = error_response(InternalError("The gateway had an internal error while processing your request."))
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id:
        response.headers["x-request-id"] = request_id
    return response


def app_from_env() -> Starlette:
    """Entry point for uvicorn workers: the config path comes through the environment."""
    path = os.environ[CONFIG_FILE_ENV]
    config, settings = load_config(path, set(PROVIDERS))
    return create_app(config, settings)
