"""The app factory: builds every dependency once and maps paths to handlers.

The whole route table is at the bottom of `create_app`.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from admin.api import AdminApi, admin_routes
from admin.complexity_api import ComplexityApi, complexity_routes
from admin.forecast_api import ForecastApi, forecast_routes
from admin.ledger_api import LedgerApi, ledger_routes
from admin.privacy_api import PrivacyApi, privacy_routes
from admin.prompts_api import PromptsApi, prompts_routes
from admin.recommendations_api import RecommendationsApi, recommendation_routes
from admin.served import ServedModels
from admin.ui.routes import admin_ui_routes
from gateway.accounting.forecasts import Forecasts
from gateway.accounting.ledger import build_ledger, build_queries
from gateway.accounting.limits import build_limiter
from gateway.accounting.pricing import PriceBook, load_price_table
from gateway.config.environment import CONFIG_FILE_ENV
from gateway.config.file import Config, load_config
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError, InternalError, MethodNotAllowed, ModelNotFound, NotFound
from gateway.core.types import Endpoint
from gateway.db.connect import postgres_dsn
from gateway.dialects.anthropic.count_tokens import count_tokens_endpoint
from gateway.dialects.anthropic.endpoint import MESSAGES
from gateway.dialects.responses.adapters import adapter_chooser
from gateway.dialects.responses.endpoint import ResponsesApi
from gateway.edge.front import Front, Handler
from gateway.edge.request_id import RequestIdMiddleware
from gateway.edge.responses import error_response, json_response
from gateway.identity.access import Access
from gateway.identity.auth import KeyAuth, check_master_key, client_address
from gateway.identity.throttle import build_throttle
from gateway.observability.alerts.forecast import ForecastWatcher
from gateway.observability.logs import RequestLogRecorder
from gateway.observability.setup import build_observability
from gateway.pipeline.proxy import ClientTimeouts, Proxy
from gateway.plugins.cache.embed import SelfEmbedder
from gateway.plugins.registry import build_plugins
from gateway.privacy.service import build_privacy
from gateway.prompts.apply import PromptTemplates
from gateway.prompts.store import PromptStore
from gateway.providers.registry import probe_for, provider_classes
from gateway.routing.router import Router
from gateway.upstream.client import UpstreamClient

log = logging.getLogger("gateway")


def create_app(config: Config, settings: Settings, *, demo: bool = False) -> Front:
    """`demo`: `gateway demo`, whose well-known short master key serves only loopback."""
    master_key = check_master_key(settings.master_key, demo=demo)
    observability = build_observability(config, settings)
    upstream = UpstreamClient(settings.upstream_max_connections)
    prices = PriceBook(load_price_table())
    providers = {name: cls(settings) for name, cls in provider_classes().items()}
    # A complexity model's embedding classifier calls the gateway's own /v1/embeddings (bound below).
    classifier_embed = SelfEmbedder(master_key.get_secret_value(), purpose="complexity-routing") if any(
        g.complexity is not None and g.complexity.classifier is not None for g in config.models) else None
    router = Router(config.models, config.routing, prices=prices, workers=settings.workers,
                    default_deadline_s=settings.upstream_timeout_s, on_circuit=observability.circuit_listener,
                    probe_for=probe_for(providers), embed=classifier_embed)
    limiter = build_limiter(config, settings, prices, group_name=lambda model: router.group(model).name)
    # The cost ledger (gateway/accounting/ledger/): a Recorder on the request path, a writer task in the lifespan.
    ledger = build_ledger(settings) if settings.ledger_enabled else None
    observability.watch(limiter=limiter, ledger=ledger, router=router)
    ledger_queries = build_queries(settings)
    # Guardrails, the response cache and third-party plugins (gateway/plugins/), per team and key.
    plugins = build_plugins(config.plugins, settings, prices, observability.metrics, observability.labels)
    # Keys, teams and the audit log: Postgres with database_url, else SQLite under data_dir.
    access = Access(settings)
    observability.name_teams(access)  # team names for /metrics (llm_gateway_team_info)
    throttle = build_throttle(settings)  # failed authentication, per address and key prefix
    auth = KeyAuth(master_key, access, throttle)
    # The limiter owns the spend counters: the admin API reads them through it (a SpendReader).
    admin = AdminApi(access, auth, limiter, settings.key_rotation_grace_s, ServedModels.of(config.models))
    # Budget forecasts (gateway/accounting/forecast.py): the admin API's, and a watcher for gauges and alerts.
    forecasts = Forecasts(lambda: access.store, postgres=postgres_dsn(settings) is not None,
                          timezone=settings.limits_timezone)
    forecast_watcher = ForecastWatcher(
        forecasts, interval_s=settings.forecast_interval_s, metrics=observability.metrics,
        webhooks=[url.get_secret_value() for url in settings.alert_webhooks],
        claims=observability.alerter.claims if observability.alerter is not None else None,
        key_labels=settings.metrics_key_labels, timeout_s=settings.alert_timeout_s,
    )
    # Stored prompt templates (gateway/prompts/): Chat Completions' `prompt` field and the Responses API's.
    prompts = PromptTemplates(lambda: PromptStore(access.store.db))
    proxy = Proxy(
        auth=auth,
        router=router,
        providers=providers,
        upstream=upstream,
        max_body_bytes=settings.max_body_bytes,
        prices=prices,
        admission=limiter,
        recorders=[*observability.recorders, *([ledger] if ledger is not None else [])],
        tracer=observability.tracer,
        plugins=plugins,
        prompts=prompts,
        choose_adapter=adapter_chooser(settings),
        timeouts=ClientTimeouts(
            settings.client_body_timeout_s, settings.client_body_idle_s, settings.client_send_timeout_s
        ),
        durable=ledger.committed if ledger is not None and settings.ledger_durable else None,
    )
    # OpenAI's Responses API: create goes through the proxy; stored responses live in the key store's database.
    request_log = next((r for r in observability.recorders if isinstance(r, RequestLogRecorder)), None)
    responses = ResponsesApi(auth, lambda: access.store.db, timedelta(days=settings.responses_retention_days),
                             log_line=request_log.plain if request_log is not None else None, prompts=prompts)
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # First: a key store that cannot be opened or migrated stops start-up before anything else.
        await access.start()
        await upstream.start()
        router.start(upstream)
        await limiter.start()
        await plugins.open()
        await observability.start()
        if ledger is not None:
            await ledger.start()
        await forecast_watcher.start()
        # Everything built so far lives as long as the process: keep the collector off it, and
        # collect young objects less often, since every request makes many short-lived ones.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        try:
            yield
        finally:
            await forecast_watcher.stop()
            await router.close()
            if classifier_embed is not None:
                await classifier_embed.close()
            await upstream.close()
            await limiter.close()
            await plugins.close()
            await ledger_queries.close()
            if ledger is not None:
                # After uvicorn's drain, so every request that finished has recorded its row.
                await ledger.stop()
            # After the limiter and the ledger, so that their last counts are exported.
            await observability.stop()
            await access.close()
            await throttle.close()

    def model_object(name: str) -> dict[str, object]:
        return {"id": name, "object": "model", "created": created, "owned_by": "gateway"}

    async def list_models(request: Request) -> Response:
        principal = await auth.authenticate(request.headers, client_address(request))
        names = auth.visible_models(principal, [g.name for g in router.groups])
        return json_response({"object": "list", "data": [model_object(name) for name in names]})

    async def get_model(request: Request) -> Response:
        principal = await auth.authenticate(request.headers, client_address(request))
        name = router.group(request.path_params["model"]).name
        if not auth.visible_models(principal, [name]):
            raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.", param="model")
        return json_response(model_object(name))

    async def root(request: Request) -> Response:
        # What answers `HEAD /` and `GET /` (clients probe it to see that something is there).
        about: dict[str, object] = {"service": "llm-gateway", "api": "/v1"}
        if settings.admin_ui_enabled:
            about["admin"] = "/admin"
        return json_response(about)

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = {"config": True, "upstream_client": upstream.started, "key_store": access.started}
        ready = all(checks.values())
        # Not a readiness condition (keys still work without it), but worth seeing: whether this
        # worker hears key changes ("live") or trusts its key cache for one second only ("degraded").
        info = {"key_changes": "live" if access.changes_live else "degraded"}
        return json_response({"status": "ready" if ready else "not ready", "checks": checks, "info": info},
                             200 if ready else 503)

    # The API: served by the front door (gateway/edge/front.py), past Starlette's stack.
    api_endpoints = {"/v1/chat/completions": Endpoint.CHAT, "/v1/completions": Endpoint.COMPLETIONS,
                     "/v1/embeddings": Endpoint.EMBEDDINGS, "/v1/messages": Endpoint.CHAT,
                     "/v1/responses": Endpoint.CHAT,
                     "/v1/images/generations": Endpoint.IMAGES, "/v1/images/edits": Endpoint.IMAGE_EDITS,
                     "/v1/audio/transcriptions": Endpoint.TRANSCRIPTIONS,
                     "/v1/audio/translations": Endpoint.TRANSLATIONS, "/v1/audio/speech": Endpoint.SPEECH,
                     "/v1/moderations": Endpoint.MODERATIONS, "/v1/rerank": Endpoint.RERANK}  # fmt: skip
    # The endpoints of other APIs, by the name logs, metrics and the ledger give them.
    dialects = {"/v1/messages": "messages", "/v1/responses": "responses"}
    api: dict[str, Handler] = {path: proxy.handler(endpoint) for path, endpoint in api_endpoints.items()}
    api["/v1/messages"] = proxy.handler(Endpoint.CHAT, lambda: MESSAGES)
    api["/v1/messages/count_tokens"] = count_tokens_endpoint(proxy)
    api["/v1/responses"] = proxy.handler(Endpoint.CHAT, responses.dialect)

    async def record_shed(request_id: str, path: str, error: GatewayError) -> None:
        # Requests shed for overload never reach the proxy; they are still one ledger row each.
        endpoint = api_endpoints.get(path)
        if endpoint is not None:  # count_tokens generates nothing: no ledger row, shed or not
            await proxy.refused(request_id, endpoint, error, api=dialects.get(path, ""))

    # Spend by tier of the `complexity` models (gateway/routing/complexity.py), for the API and the UI.
    complexity = ComplexityApi(router, prices, lambda: access.store.db, postgres_dsn(settings) is not None,
                               admin.authorize)
    forecast_api = ForecastApi(forecasts, admin.authorize)
    privacy_api = PrivacyApi(lambda: build_privacy(settings, access.store.db), admin.authorize)
    prompts_api = PromptsApi(lambda: access.store.db, postgres_dsn(settings) is not None,
                             admin.authorize)
    recommendations = RecommendationsApi(router, prices, lambda: access.store,
                                         postgres_dsn(settings) is not None, admin.authorize)
    routes = [
        Route("/", root, methods=["GET"]),  # HEAD too
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/v1/responses/{response_id}", responses.retrieve, methods=["GET"]),
        Route("/v1/responses/{response_id}", responses.delete, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", responses.input_items, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *observability.routes,
        *ledger_routes(LedgerApi(ledger_queries, ledger, admin.authorize)),
        *admin_routes(admin),
        *privacy_routes(privacy_api),
        *complexity_routes(complexity),
        *forecast_routes(forecast_api),
        *prompts_routes(prompts_api),
        *recommendation_routes(recommendations),
        *(admin_ui_routes(admin, LedgerApi(ledger_queries, ledger, admin.authorize), router, access, settings,
                          complexity=complexity, forecasts=forecast_api, prompts=prompts_api, privacy=privacy_api,
                          recommendations=recommendations)
          if settings.admin_ui_enabled else []),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        response = await _http_error(request, exc)
        if request_log is not None:
            request_log.unrouted(request.scope.get("state", {}).get("request_id"), request.method,
                                 request.url.path, response.status_code)
        return response

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers={
            GatewayError: _gateway_error,
            HTTPException: http_error,
            Exception: _unexpected_error,
        },
    )
    front = Front(
        app, api, max_inflight=settings.max_inflight, retry_after_s=settings.overload_retry_after_s,
        on_shed=record_shed, gauge=observability.metrics.inflight if observability.metrics is not None else None,
    )
    plugins.bind(front)  # plugins that call the gateway itself (the semantic cache's embeddings)
    if classifier_embed is not None:
        classifier_embed.bind(front)
    return front


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}.",
                                               headers={"allow": _allowed_methods(request, exc)}))
    return error_response(NotFound(f"Unknown path {request.url.path}.", code="unknown_url"))


def _allowed_methods(request: Request, exc: HTTPException) -> str:
    """Every method any route of this path takes. Starlette's 405 names only the first route that
    matched the path, and a path may have one route per method (the admin UI's GET page and POST form)."""
    methods = {m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()}
    router = request.scope.get("router")
    for route in getattr(router, "routes", []):
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # Runs outside the request-id middleware, so it sets the header itself. Starlette logs the
    # traceback to the server log after this; the client gets no detail.
    response = error_response(InternalError("The gateway had an internal error while processing your request."))
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id:
        response.headers["x-request-id"] = request_id
    return response


def app_from_env() -> Front:
    """Entry point for uvicorn workers: the config path comes through the environment."""
    path = os.environ[CONFIG_FILE_ENV]
    config, settings = load_config(path, provider_classes())
    return create_app(config, settings)
