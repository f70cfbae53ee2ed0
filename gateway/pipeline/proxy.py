"""The request path, top to bottom.

    auth -> read and check the body -> route -> admit (limits) -> provider adapter -> upstream
         -> relay -> finish (settle limits, record: ledger, metrics)

A good answer is sent before `finish` runs (a unary one by `FinishingReply`, a stream after its
last event): settling the limits and recording are not part of the client's wait. Every other
outcome is finished before its error is raised.

Each step lives in its own module; this one only says the order. Limits, plugins and the
ledger hook in at the marked places as they arrive.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from time import perf_counter
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.accounting.ledger.labels import TAGS_HEADER, client_user, parse_tags
from gateway.accounting.pricing import PriceBook
from gateway.config.file import Deployment
from gateway.core.errors import (
    GatewayError,
    RateLimited,
    ServiceUnavailable,
    UpstreamTimeout,
    UpstreamUnreachable,
    sse_error_event,
)
from gateway.core.types import MULTIPART_ENDPOINTS, SSE_ENDPOINTS, Endpoint, Principal, StreamTranslator
from gateway.edge.body import body_if_here, parse_body, read_body, upload_body
from gateway.edge.multipart import read_upload
from gateway.edge.protocol import ABORT
from gateway.edge.relay import SSE_HEADERS, BoundedSend, ClientStalled, DisconnectWatcher, pump
from gateway.edge.responses import FinishingReply, send_error
from gateway.identity.auth import Authenticator, client_address
from gateway.observability.tracing import NoTracer, Tracer
from gateway.pipeline.context import RequestContext
from gateway.pipeline.hooks import Admission, AdmitAll, Recorder
from gateway.plugins.runner import Plugins
from gateway.prompts.apply import PromptTemplates
from gateway.providers.base import Provider
from gateway.routing.outcomes import DEADLINE_CODE
from gateway.routing.plan import Attempt, Plan
from gateway.routing.router import Router
from gateway.upstream.client import UpstreamCall, UpstreamClient, UpstreamResponse, UpstreamStream

log = logging.getLogger("gateway")

# Raw body -> OpenAI request body (another API's reader, given the context with its caller known);
# raises GatewayError on bad input.
BodyAdapter = Callable[[bytes, RequestContext], dict[str, Any] | Awaitable[dict[str, Any]]]
# The adapter that serves one request on one deployment: the deployment's provider, or a dialect's
# adapter around it (gateway/dialects/responses/adapters.py: Responses relayed natively, chat sent to
# a Responses-only deployment). May raise GatewayError when the deployment cannot serve the request.
AdapterChoice = Callable[[RequestContext, Deployment, Provider], Provider]


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """What a client controls, bounded (settings client_body_timeout_s, client_body_idle_s,
    client_send_timeout_s)."""

    body_s: float = 60.0
    body_idle_s: float = 15.0
    send_s: float = 30.0


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
        auth: Authenticator,
        router: Router,
        providers: dict[str, Provider],
        upstream: UpstreamClient,
        max_body_bytes: int,
        prices: PriceBook,
        admission: Admission | None = None,
        recorders: Sequence[Recorder] = (),
        tracer: Tracer | None = None,
        plugins: Plugins | None = None,
        prompts: PromptTemplates | None = None,
        choose_adapter: AdapterChoice | None = None,
        timeouts: ClientTimeouts | None = None,
        durable: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        # A span per upstream attempt when tracing is on (gateway/observability/tracing.py).
        self.tracer: Tracer = tracer or NoTracer()
        self.auth = auth
        self.router = router
        self.providers = providers
        self.upstream = upstream
        self.max_body_bytes = max_body_bytes
        self.prices = prices
        self.admission: Admission = admission or AdmitAll()
        self.recorders = tuple(recorders)
        # Guardrails, the cache, third-party plugins (gateway/plugins/): None or nothing configured = no cost.
        self.plugins = plugins
        # Prompt templates (gateway/prompts/): a Chat Completions body's `prompt` field.
        self.prompts = prompts
        self.choose_adapter = choose_adapter
        self.timeouts = timeouts or ClientTimeouts()
        # The ledger's durable mode: what to await so that a finished request's row is on disk
        # before its answer completes (then a good answer is finished before its last byte is sent).
        self.durable = durable
        # Requests in flight in this worker per key with a max_parallel, counted from before the
        # body is read: a key that trickles bodies cannot pin more of the worker than its own limit.
        self._slots: dict[str, int] = {}

    def adapter(self, ctx: RequestContext, deployment: Deployment) -> Provider:
        provider = self.providers[deployment.provider]
        return provider if self.choose_adapter is None else self.choose_adapter(ctx, deployment, provider)

    async def handle(
        self, request: Request, endpoint: Endpoint, adapt: BodyAdapter | None = None, api: str = ""
    ) -> Response | FinishingReply | StreamCall:
        """`adapt` reads another API's request body into OpenAI's (the inbound /v1/messages and
        /v1/responses), and `api` names that API in logs, metrics and the ledger."""
        ctx = RequestContext(request.scope["state"]["request_id"], endpoint, perf_counter(), api=api)
        ctx.response_headers["x-request-id"] = ctx.request_id
        ctx.request_headers = request.headers
        raw = b""
        try:
            ctx.principal = await self.auth.authenticate(request.headers, client_address(request))
            ctx.tags = parse_tags(request.headers.get(TAGS_HEADER))
            self._take_slot(ctx, ctx.principal)
            if endpoint in MULTIPART_ENDPOINTS:
                ctx.upload = await read_upload(
                    request, self.max_body_bytes, self.timeouts.body_s, self.timeouts.body_idle_s
                )
                ctx.body = upload_body(ctx.upload, endpoint)
            else:
                raw = await read_body(
                    request, self.max_body_bytes, self.timeouts.body_s, self.timeouts.body_idle_s
                )
                if self.prompts is not None and endpoint is Endpoint.CHAT and adapt is None and b'"prompt"' in raw:
                    raw = await self.prompts.apply(raw, ctx)  # a prompt template, rendered before anything else
                if adapt is None:
                    ctx.body = parse_body(raw, endpoint)
                else:
                    adapted = adapt(raw, ctx)
                    ctx.body = await adapted if inspect.isawaitable(adapted) else adapted
            ctx.model = ctx.body["model"]
            ctx.user = client_user(ctx.body)
            ctx.stream = endpoint in SSE_ENDPOINTS and ctx.body.get("stream") is True
            if ctx.stream:
                options = ctx.body.get("stream_options")
                ctx.client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
            self.router.group(ctx.model)  # an unknown model is a 404 before anything else happens
            self.auth.check_model(ctx.principal, ctx.model)  # a model outside the key's allowed ones: 403
            ctx.plugins = self.plugins.start(ctx.principal) if self.plugins is not None else None
            if ctx.plugins is not None and (answered := await ctx.plugins.before(ctx)) is not None:
                return await self._answered(ctx, answered)  # a plugin answered (a cache hit): no upstream call
            await self.admission.admit(ctx)
            ctx.admitted = True
            await self.router.classify(ctx)  # a complexity model's embedding classifier, where it has one
        except GatewayError as error:
            # Refused requests are requests too: they are finished (and recorded) like any other,
            # under the model they asked for when the body said one before it was refused.
            ctx.status, ctx.error_type = error.status, error.type
            if not ctx.model and raw:
                ctx.model = _model_named(raw)
            elif ctx.principal is None and endpoint not in MULTIPART_ENDPOINTS:
                # Refused at authentication, before its body was read: named from a small body that comes at once.
                ctx.model = _model_named(await body_if_here(request))[:MAX_LOGGED_MODEL]
            error.extra_headers.update(ctx.response_headers)
            await self.finish(ctx)
            raise
        except BaseException as exc:
            # The client left while sending its body, or a bug: still finished, still recorded.
            ctx.cancelled = isinstance(exc, ClientDisconnect | asyncio.CancelledError)
            await self.finish(ctx)
            raise
        if ctx.stream or endpoint is Endpoint.SPEECH:
            # Speech is relayed like a stream: its audio reaches the client as the upstream makes it.
            return StreamCall(self, ctx)
        return await self._unary(ctx)

    async def _unary(self, ctx: RequestContext) -> FinishingReply:
        plan: Plan | None = None
        answered = False
        try:
            plan = self.router.plan(ctx)
            while (attempt := await plan.next()) is not None:
                deployment = attempt.deployment
                ctx.upstream_started = perf_counter()
                trace = self.tracer.start_attempt(ctx, deployment)
                try:
                    provider = self.adapter(ctx, deployment)
                    response = await self._send(provider.build_call(ctx, deployment), plan)
                    ctx.first_byte_at = perf_counter()
                    if response.status != 200:
                        raise provider.map_error(response.status, response.headers, response.body, deployment.id or "")
                    body, ctx.usage = provider.parse_response(ctx, response.body)
                except GatewayError as error:
                    trace.end(error.code or error.type)
                    attempt.failed(error)
                    continue
                trace.end()
                attempt.succeeded(ctx.usage)
                if ctx.plugins is not None:
                    body = await ctx.plugins.after(ctx, body)
                ctx.status = 200
                answered = True
                if self.durable is not None:
                    await self.finish(ctx)  # the row on disk first, then the answer
                    return FinishingReply(body, 200, ctx.response_headers, _nothing)
                return FinishingReply(body, 200, ctx.response_headers, partial(self.finish, ctx))
            raise plan.error()
        except GatewayError as error:
            ctx.status, ctx.error_type = error.status, error.type
            error.extra_headers.update(ctx.response_headers)
            raise
        except asyncio.CancelledError:
            ctx.cancelled = True  # the server cut it (the drain ran out)
            raise
        finally:
            if plan is not None:
                plan.close()
            if not answered:
                await self.finish(ctx)

    async def open_stream(self, ctx: RequestContext) -> OpenStream:
        """Open the upstream stream and wait for its first bytes: until then, a failure is an HTTP
        error and the router may try elsewhere; from the first byte on, the stream is the client's."""
        plan = self.router.plan(ctx)
        try:
            while (attempt := await plan.next()) is not None:
                ctx.upstream_started = perf_counter()
                trace = self.tracer.start_attempt(ctx, attempt.deployment)
                try:
                    provider = self.adapter(ctx, attempt.deployment)
                    stream, chunks, first = await self._first_bytes(provider, ctx, attempt, plan)
                except GatewayError as error:
                    trace.end(error.code or error.type)
                    attempt.failed(error)
                    continue
                trace.end()
                attempt.first_byte()
                ctx.first_byte_at = perf_counter()
                translator = provider.stream_translator(ctx)
                return OpenStream(stream, attempt.watch(chunks, translator), first, translator)
            raise plan.error()
        except BaseException:
            plan.close()
            raise

    async def _send(self, call: UpstreamCall, plan: Plan) -> UpstreamResponse:
        remaining = plan.remaining()
        # Within a second of the call's own timeout, that timeout is the deadline: no second timer.
        if remaining + 1.0 >= call.timeout_s:
            return await self.upstream.send(call)
        try:
            async with asyncio.timeout(remaining):
                return await self.upstream.send(call)
        except TimeoutError:
            raise _deadline_passed(call) from None

    async def _first_bytes(
        self, provider: Provider, ctx: RequestContext, attempt: Attempt, plan: Plan
    ) -> tuple[UpstreamStream, AsyncIterator[bytes], bytes]:
        call = provider.build_call(ctx, attempt.deployment)
        remaining = plan.remaining()
        stream: UpstreamStream | None = None
        try:
            async with asyncio.timeout(remaining if remaining < call.timeout_s else None):
                stream = await self.upstream.open(call)
                if stream.status != 200:
                    body = await stream.read()
                    raise provider.map_error(stream.status, stream.headers, body, call.deployment_id)
                chunks = stream.chunks()
                first = await anext(chunks, b"")
            if not first:
                raise UpstreamUnreachable(f"deployment {call.deployment_id} ended the stream before sending anything")
        except TimeoutError:
            if stream is not None:
                stream.close()
            raise _deadline_passed(call) from None
        except BaseException:
            if stream is not None:
                stream.close()
            raise
        return stream, chunks, first

    async def _answered(self, ctx: RequestContext, response: Response | StreamCall) -> Response | StreamCall:
        ctx.status = response.status_code if isinstance(response, Response) else 200  # a replayed stream
        await self.finish(ctx)
        return response

    async def refused(self, request_id: str, endpoint: Endpoint, error: GatewayError, api: str = "") -> None:
        """A request turned away before `handle` saw it (overload shedding): finished all the same."""
        ctx = RequestContext(request_id, endpoint, perf_counter(), api=api)
        ctx.status, ctx.error_type = error.status, error.type
        await self.finish(ctx)

    def _take_slot(self, ctx: RequestContext, principal: Principal) -> None:
        cap = principal.key_limits.max_parallel
        if cap is None:
            return
        held = self._slots.get(principal.key_id, 0)
        if held >= cap:
            raise RateLimited(f"Too many parallel requests for key {principal.key_prefix}: Limit {cap}. "
                              "Retry when one of them has finished.", retry_after=1.0)  # fmt: skip
        self._slots[principal.key_id] = held + 1
        ctx.slot_key = principal.key_id

    def _give_slot(self, ctx: RequestContext) -> None:
        key = ctx.slot_key
        if key is not None:
            ctx.slot_key = None
            left = self._slots[key] - 1
            if left:
                self._slots[key] = left
            else:
                del self._slots[key]

    async def finish(self, ctx: RequestContext) -> None:
        """Every request ends here exactly once: good, failed, refused or cancelled."""
        self._give_slot(ctx)
        ctx.finished = perf_counter()
        if ctx.upload is not None:
            ctx.upload.close()
        if not ctx.status:
            ctx.status = 499 if ctx.cancelled else 500
        if ctx.usage is not None and ctx.deployment is not None:
            ctx.cost_usd = self.prices.cost(ctx.deployment, ctx.model, ctx.usage)
            if ctx.complexity_top is not None:
                ctx.top_tier_cost_usd = self.prices.cost_on(ctx.complexity_top, ctx.usage)
        if ctx.plugins is not None:
            await ctx.plugins.finish(ctx)  # a streamed answer's `after` hooks, or `on_error`; never raises
        try:
            if ctx.admitted:
                await self.admission.settle(ctx)
        finally:
            # A settle that fails (or is cancelled) must not cost the request its ledger row,
            # nor one recorder's bug the others' record (or the client its finished answer).
            for recorder in self.recorders:
                try:
                    recorder.record(ctx)
                except Exception:
                    log.exception("recorder %s failed on request %s", type(recorder).__name__, ctx.request_id)
        if self.durable is not None:
            await self.durable()


class StreamCall:
    """The ASGI response of a streamed request: it owns the stream from opening to the last byte."""

    def __init__(self, proxy: Proxy, ctx: RequestContext) -> None:
        self.proxy = proxy
        self.ctx = ctx
        self.ended = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.ctx
        watcher = DisconnectWatcher(receive)
        opened: OpenStream | None = None
        # A client that stops reading: once the send buffer is full, a write waits this long at most.
        send = BoundedSend(send, self.proxy.timeouts.send_s)
        started = False
        try:
            try:
                opened = await self.proxy.open_stream(ctx)
                if ctx.plugins is not None and ctx.stream:
                    opened.translator = ctx.plugins.wrap(ctx, opened.translator)  # the chunk hooks
            except GatewayError as error:
                ctx.status, ctx.error_type = error.status, error.type
                error.extra_headers.update(ctx.response_headers)
                await send_error(send, error)
                return
            ctx.status = 200
            head = SSE_HEADERS if ctx.stream else _binary_headers(opened.stream.headers)
            headers = head + [(k.encode(), v.encode()) for k, v in ctx.response_headers.items()]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            started = True
            try:
                await pump(send, opened.first, opened.chunks, opened.translator)
                tail = opened.translator.finish()
            except GatewayError as error:
                ctx.error_type = error.type
                if not ctx.stream:
                    # Audio has no in-band error: the response ends unfinished, which clients see.
                    return
                # Headers are gone: the error travels in-band, and the stream closes cleanly.
                tail = sse_error_event(error)
            if self.proxy.durable is not None:
                await self._end(opened)  # the row on disk first, then the stream's last frame
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        except ClientStalled:
            # Nothing more can reach a client that does not read: drop the connection, buffer and all.
            ctx.cancelled = True
            log.info("request %s: the client stopped reading its stream for %.0f s; stream cancelled",
                     ctx.request_id, self.proxy.timeouts.send_s)  # fmt: skip
            abort = scope.get("extensions", {}).get(ABORT)
            if abort is not None:
                abort()
        except asyncio.CancelledError:
            if watcher.absorb():
                ctx.cancelled = True
            elif not await self._cut(send, started):
                raise
        finally:
            watcher.stop()
            await self._end(opened)

    async def _end(self, opened: OpenStream | None) -> None:
        """Close the upstream and finish the request, once."""
        if self.ended:
            return
        self.ended = True
        if opened is not None:
            opened.stream.close()
            await opened.chunks.aclose()  # type: ignore[attr-defined]
            self.ctx.usage = opened.translator.usage
        await self.proxy.finish(self.ctx)

    async def _cut(self, send: BoundedSend, started: bool) -> bool:
        """The server cancelled the stream (the drain after SIGTERM ran out): tell the client in-band
        and end the stream properly. False if this cancellation is not one to absorb."""
        task = asyncio.current_task()
        if task is None or task.cancelling() > 1:
            return False
        task.uncancel()
        ctx = self.ctx
        ctx.cancelled = True
        error = ServiceUnavailable("The gateway is shutting down and cut this stream; retry the request.")
        log.info("request %s: stream cut at the end of the drain", ctx.request_id)
        try:
            if started:
                await send({"type": "http.response.body", "body": sse_error_event(error) + DONE, "more_body": False})
            else:
                ctx.status, ctx.error_type = error.status, error.type
                await send_error(send, error)
        except (ClientStalled, OSError):
            pass  # the client is gone or not reading: nothing more to tell it
        return True


DONE = b"data: [DONE]\n\n"


async def _nothing() -> None:
    return None


def _binary_headers(upstream: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """The upstream's content type (audio/mpeg, audio/wav...) for a relayed binary answer."""
    kind = next((v for k, v in upstream.items() if k.lower() == "content-type"), "application/octet-stream")
    return [(b"content-type", kind.encode("latin-1")), (b"cache-control", b"no-cache")]


# An unauthenticated client's model name is kept in the log and ledger no longer than this.
MAX_LOGGED_MODEL = 256


def _model_named(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else ""


def _deadline_passed(call: UpstreamCall) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"deployment {call.deployment_id} had not answered when the request's deadline passed",
        code=DEADLINE_CODE,
    )
