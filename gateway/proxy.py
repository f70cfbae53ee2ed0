"""The request path, top to bottom.

    auth -> read and check the body -> route -> admit (limits) -> provider adapter -> upstream
         -> relay -> finish (settle limits, record: ledger, metrics)

Each step lives in its own module; this one only says the order. Limits, plugins and the
ledger hook in at the marked places as they arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from time import perf_counter

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.auth import MasterKeyAuth
from gateway.context import Endpoint, RequestContext
from gateway.errors import GatewayError, sse_error_event
from gateway.hooks import AdmitAll, Admission, Recorder
from gateway.pricing import PriceBook
from gateway.providers.base import Provider, StreamTranslator
from gateway.relay import SSE_HEADERS, DisconnectWatcher, pump
from gateway.requests import parse_body, read_body
from gateway.responses import send_error
from gateway.routing.router import Router
from gateway.upstream import UpstreamClient, UpstreamStream


@dataclass(slots=True)
class OpenStream:
    stream: UpstreamStream
    chunks: AsyncIterator[bytes]
    first: bytes
    translator: StreamTranslator


class Proxy:
    def __init__(
        self,
        *,
        auth: MasterKeyAuth,
        router: Router,
        providers: dict[str, Provider],
        upstream: UpstreamClient,
        max_body_bytes: int,
        prices: PriceBook,
        admission: Admission | None = None,
        recorders: Sequence[Recorder] = (),
    ) -> None:
        self.auth = auth
        self.router = router
        self.providers = providers
        self.upstream = upstream
        self.max_body_bytes = max_body_bytes
        self.prices = prices
        self.admission: Admission = admission or AdmitAll()
        self.recorders = tuple(recorders)

    async def handle(self, request: Request, endpoint: Endpoint) -> Response | StreamCall:
        ctx = RequestContext(request.scope["state"]["request_id"], endpoint, perf_counter())
        try:
            ctx.principal = await self.auth.authenticate(request.headers)
            ctx.body = parse_body(await read_body(request, self.max_body_bytes), endpoint)
            ctx.model = ctx.body["model"]
            ctx.stream = endpoint is not Endpoint.EMBEDDINGS and ctx.body.get("stream") is True
            if ctx.stream:
                options = ctx.body.get("stream_options")
                ctx.client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
            self.router.group(ctx.model)  # an unknown model is a 404 before anything else happens
            await self.admission.admit(ctx)
            ctx.admitted = True
        except GatewayError as error:
            # Refused requests are requests too: they are finished (and recorded) like any other.
            ctx.status, ctx.error_type = error.status, error.type
            error.extra_headers.update(ctx.response_headers)
            await self.finish(ctx)
            raise
        if ctx.stream:
            return StreamCall(self, ctx)
        return await self._unary(ctx)

    async def _unary(self, ctx: RequestContext) -> Response:
        try:
            for deployment in self.router.plan(ctx):
                provider = self.providers[deployment.provider]
                ctx.deployment = deployment
                ctx.attempts += 1
                ctx.upstream_started = perf_counter()
                response = await self.upstream.send(provider.build_call(ctx, deployment))
                ctx.first_byte_at = perf_counter()
                if response.status != 200:
                    raise provider.map_error(response.status, response.headers, response.body, deployment.id or "")
                body, ctx.usage = provider.parse_response(ctx, response.body)
                ctx.status = 200
                return Response(body, media_type="application/json", headers=ctx.response_headers)
            raise AssertionError("the router planned no deployment")
        except GatewayError as error:
            ctx.status, ctx.error_type = error.status, error.type
            error.extra_headers.update(ctx.response_headers)
            raise
        finally:
            await self.finish(ctx)

    async def open_stream(self, ctx: RequestContext) -> OpenStream:
        """Open the upstream stream and wait for its first bytes: until then, a failure is an HTTP error."""
        for deployment in self.router.plan(ctx):
            provider = self.providers[deployment.provider]
            ctx.deployment = deployment
            ctx.attempts += 1
            ctx.upstream_started = perf_counter()
            stream = await self.upstream.open(provider.build_call(ctx, deployment))
            try:
                if stream.status != 200:
                    body = await stream.read()
                    raise provider.map_error(stream.status, stream.headers, body, deployment.id or "")
                chunks = stream.chunks()
                first = await anext(chunks, b"")
            except BaseException:
                stream.close()
                raise
            ctx.first_byte_at = perf_counter()
            return OpenStream(stream, chunks, first, provider.stream_translator(ctx))
        raise AssertionError("the router planned no deployment")

    async def finish(self, ctx: RequestContext) -> None:
        """Every request ends here exactly once: good, failed, refused or cancelled."""
        ctx.finished = perf_counter()
        if not ctx.status:
            ctx.status = 499 if ctx.cancelled else 500
        if ctx.usage is not None and ctx.deployment is not None:
            ctx.cost_usd = self.prices.cost(ctx.deployment, ctx.model, ctx.usage)
        if ctx.admitted:
            await self.admission.settle(ctx)
        for recorder in self.recorders:
            recorder.record(ctx)


class StreamCall:
    """The ASGI response of a streamed request: it owns the stream from opening to the last byte."""

    def __init__(self, proxy: Proxy, ctx: RequestContext) -> None:
        self.proxy = proxy
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.ctx
        watcher = DisconnectWatcher(receive)
        opened: OpenStream | None = None
        try:
            try:
                opened = await self.proxy.open_stream(ctx)
            except GatewayError as error:
                ctx.status, ctx.error_type = error.status, error.type
                error.extra_headers.update(ctx.response_headers)
                await send_error(send, error)
                return
            ctx.status = 200
            headers = SSE_HEADERS + [(k.encode(), v.encode()) for k, v in ctx.response_headers.items()]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                await pump(send, opened.first, opened.chunks, opened.translator)
                tail = opened.translator.finish()
            except GatewayError as error:
                # Headers are gone: the error travels in-band, and the stream closes cleanly.
                ctx.error_type = error.type
                tail = sse_error_event(error)
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        except asyncio.CancelledError:
            if not watcher.absorb():
                raise
            ctx.cancelled = True
        finally:
            watcher.stop()
            if opened is not None:
                opened.stream.close()
                await opened.chunks.aclose()  # type: ignore[attr-defined]
                ctx.usage = opened.translator.usage
            await self.proxy.finish(ctx)
