"""The request path, top to bottom.

    auth (a Principal) -> read and check the body (the dialect's neutral body, then the one frozen
         request value, a ClientRequest, which the stages below are handed) -> plugins, before
         (None, or their answer) -> admit (a reservation) -> route (a Plan, giving Attempts)
         -> provider adapter (an UpstreamCall; the body and its Usage, or a StreamTranslator)
         -> upstream -> relay (in the client's dialect) -> finish (a RequestOutcome: the plugins'
         closing hooks, then settle, which returns the budgets; then one RequestRecord for every
         recorder: ledger, metrics, logs, traces, alerts)

Each request is served inside one `Exchange` (exchange.py), whose end finishes it, once, however
it ended. A good answer is sent before that (unless the ledger is durable: then the row is on disk
first): settling the limits and recording are not part of the client's wait. A refusal or a
failure is finished before its error is sent. The request's `Dialect` (dialect.py) reads its body
(a `Read`, placed here) and writes its answer and errors; a stream is written by its writer, which
the relay calls on the neutral stream.

Each step lives in its own module; this one only says the order. Limits, plugins and the
ledger hook in at the marked places as they arrive.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from time import perf_counter
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.accounting.ledger.labels import TAGS_HEADER, client_user, parse_tags
from gateway.accounting.pricing import PriceBook
from gateway.config.file import Deployment
from gateway.core.errors import (
    GatewayError,
    RateLimited,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from gateway.core.request import ClientRequest
from gateway.core.types import (
    MULTIPART_ENDPOINTS,
    SSE_ENDPOINTS,
    BudgetUsage,
    Endpoint,
    GuardrailDecision,
    Principal,
    RequestOutcome,
)
from gateway.core.upload import Upload
from gateway.edge.body import body_if_here, parse_body, read_body, upload_body
from gateway.edge.front import Handler
from gateway.edge.multipart import read_upload
from gateway.edge.responses import JSONReply
from gateway.identity.auth import Authenticator, client_address
from gateway.observability.tracing import NoTracer, Tracer
from gateway.pipeline.context import RequestContext
from gateway.pipeline.dialect import OPENAI, Dialect, Read, Reader
from gateway.pipeline.exchange import Exchange
from gateway.pipeline.hooks import NO_FINDINGS, Admission, AdmitAll, PluginFindings, PluginsBefore, Recorder
from gateway.pipeline.record import RequestRecord
from gateway.pipeline.stream_call import OpenStream, StreamCall
from gateway.plugins.replay_call import ReplayCall
from gateway.plugins.runner import Plugins
from gateway.prompts.apply import PromptTemplates
from gateway.providers.base import Provider, TextAnswers
from gateway.routing.outcomes import DEADLINE_CODE
from gateway.routing.plan import Attempt, Plan
from gateway.routing.router import Router
from gateway.upstream.client import UpstreamCall, UpstreamClient, UpstreamResponse, UpstreamStream

log = logging.getLogger("gateway")

# The adapter that serves one request on one deployment: the deployment's provider, or a dialect's
# adapter around it (gateway/dialects/responses/adapters.py: Responses relayed natively, chat sent to
# a Responses-only deployment). Handed what the dialect's reader returned as its own state and what
# the plugins' `before` hooks decided. May raise GatewayError when the deployment cannot serve the request.
AdapterChoice = Callable[[object | None, Sequence[GuardrailDecision], Deployment, Provider], Provider]


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """What a client controls, bounded (settings client_body_timeout_s, client_body_idle_s,
    client_send_timeout_s)."""

    body_s: float = 60.0
    body_idle_s: float = 15.0
    send_s: float = 30.0


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
        if self.choose_adapter is None:
            return provider
        return self.choose_adapter(ctx.dialect, ctx.decided_before, deployment, provider)

    def handler(self, endpoint: Endpoint, dialect: Callable[[], Dialect] | None = None) -> Handler:
        """The front door's handler for one endpoint; `dialect` makes each request's dialect (OpenAI's
        by default): the inbound /v1/messages and /v1/responses read and write their own API."""

        async def handle(request: Request) -> ASGIApp:
            return ExchangeCall(self, request, endpoint, OPENAI if dialect is None else dialect())

        return handle

    async def serve(self, request: Request, endpoint: Endpoint, dialect: Dialect, send: Send) -> None:
        """One request, from its body to its record. The exchange finishes it once, however it ends."""
        scope, receive = request.scope, request.receive
        ctx = RequestContext(scope["state"]["request_id"], endpoint, perf_counter(), api=dialect.api)
        ctx.response_headers["x-request-id"] = ctx.request_id
        try:
            async with Exchange(ctx, self.finish) as exchange:
                answered = await self._admit(exchange, request, endpoint, dialect.read)
                if ctx.stream or endpoint is Endpoint.SPEECH:
                    # Speech is relayed like a stream: its audio reaches the client as the upstream makes it.
                    writer = dialect.stream_writer(ctx)  # None: the neutral stream is the client's own
                    if answered is None:
                        await StreamCall(self, exchange, dialect, writer)(scope, receive, send)
                        return
                    assert isinstance(answered, ReplayCall), "a plugin answers a stream with a replay"
                    if self.durable is not None:
                        await exchange.finish()
                    await answered.written(writer)(scope, receive, send)
                    return
                if answered is None:
                    reply = await self._unary(ctx)
                else:
                    assert isinstance(answered, JSONReply), "a plugin answers a unary request as a whole"
                    reply = answered
                if self.durable is not None:
                    await exchange.finish()  # the row on disk first, then the answer
                await (await dialect.unary(reply, ctx))(scope, receive, send)
        except GatewayError as error:
            # Finished (and recorded) on the way out of the exchange; now the client hears why.
            await dialect.error(error, ctx.request_id)(scope, receive, send)

    async def _admit(
        self, exchange: Exchange, request: Request, endpoint: Endpoint, read: Reader | None
    ) -> ASGIApp | None:
        """Auth, the body, the model, the plugins' `before`, admission (its reservation kept by the
        exchange). None to go upstream; a plugin's answer (a cache hit) when one answered."""
        ctx = exchange.ctx
        raw = b""
        upload = None
        try:
            ctx.principal = principal = await self.auth.authenticate(request.headers, client_address(request))
            ctx.tags = parse_tags(request.headers.get(TAGS_HEADER))
            self._take_slot(ctx, principal)
            if endpoint in MULTIPART_ENDPOINTS:
                upload = await read_upload(
                    request, self.max_body_bytes, self.timeouts.body_s, self.timeouts.body_idle_s
                )
                try:
                    body = upload_body(upload, endpoint)
                except GatewayError:
                    upload.close()  # no request holds it yet, to close it when the request finishes
                    raise
            else:
                raw = await read_body(
                    request, self.max_body_bytes, self.timeouts.body_s, self.timeouts.body_idle_s
                )
                if self.prompts is not None and endpoint is Endpoint.CHAT and read is None and b'"prompt"' in raw:
                    # A prompt template, rendered before anything else; the record names its version.
                    raw, template = await self.prompts.apply(raw)
                    if template is not None:
                        ctx.template_id, ctx.template_version = template.template_id, template.version
                if read is None:
                    body = parse_body(raw, endpoint)
                else:
                    got = read(raw, ctx.principal)
                    body = _read(ctx, await got if inspect.isawaitable(got) else got)
            ctx.request = _client_request(ctx, principal, body, upload, request.headers)
            self.router.group(ctx.model)  # an unknown model is a 404 before anything else happens
            self.auth.check_model(principal, ctx.model)  # a model outside the key's allowed ones: 403
            ctx.plugins = self.plugins.start(principal) if self.plugins is not None else None
            if ctx.plugins is not None:
                before = await ctx.plugins.before(ctx)
                _place(ctx, before)
                if before.reply is not None:
                    ctx.status = 200  # a plugin answered (a cache hit): no upstream call
                    return before.reply
            reservation = await self.admission.admit(ctx.request)
            if reservation is not None:
                exchange.reservation = reservation
                ctx.response_headers.update(reservation.headers)
            # A complexity model's embedding classifier, where it has one.
            reading = await self.router.classify(ctx.request)
            if reading is not None:
                ctx.complexity_classified, ctx.complexity_reading = True, reading.score
        except GatewayError:
            # Refused requests are requests too: they are recorded like any other, under the model
            # they asked for when the body said one before it was refused.
            if ctx.request is None and raw:
                ctx.named_model = _model_named(raw)
            elif ctx.principal is None and endpoint not in MULTIPART_ENDPOINTS:
                # Refused at authentication, before its body was read: named from a small body that comes at once.
                ctx.named_model = _model_named(await body_if_here(request))[:MAX_LOGGED_MODEL]
            raise
        return None

    async def _unary(self, ctx: RequestContext) -> JSONReply:
        request = _admitted(ctx)
        plan = self._plan(ctx, request)
        try:
            while (attempt := await plan.next()) is not None:
                deployment = self._attempting(ctx, plan, attempt)
                ctx.upstream_started = perf_counter()
                trace = self.tracer.start_attempt(request, ctx.started, attempt.number, deployment)
                try:
                    provider = self.adapter(ctx, deployment)
                    response = await self._send(provider.build_call(request, deployment), plan)
                    ctx.first_byte_at = perf_counter()
                    if response.status != 200:
                        raise provider.map_error(response.status, response.headers, response.body, deployment.id or "")
                    body, ctx.usage = provider.parse_response(request, deployment, response.body)
                    if request.upload is not None and isinstance(provider, TextAnswers):
                        if (kind := provider.answer_type(request)) is not None:  # a transcript as text
                            ctx.response_headers["content-type"] = kind
                except GatewayError as error:
                    trace.end(error.code or error.type)
                    attempt.failed(error)
                    continue
                trace.end()
                attempt.succeeded(ctx.usage)
                if ctx.plugins is not None:
                    body = await ctx.plugins.after(ctx, body)
                ctx.status = 200
                return JSONReply(body, 200, ctx.response_headers)
            raise plan.error()
        finally:
            plan.close()

    async def open_stream(self, ctx: RequestContext) -> OpenStream:
        """Open the upstream stream and wait for its first bytes: until then, a failure is an HTTP
        error and the router may try elsewhere; from the first byte on, the stream is the client's."""
        request = _admitted(ctx)
        plan = self._plan(ctx, request)
        try:
            while (attempt := await plan.next()) is not None:
                self._attempting(ctx, plan, attempt)
                ctx.upstream_started = perf_counter()
                trace = self.tracer.start_attempt(request, ctx.started, attempt.number, attempt.deployment)
                try:
                    provider = self.adapter(ctx, attempt.deployment)
                    stream, chunks, first = await self._first_bytes(provider, request, attempt, plan)
                except GatewayError as error:
                    trace.end(error.code or error.type)
                    attempt.failed(error)
                    continue
                trace.end()
                attempt.first_byte()
                ctx.first_byte_at = perf_counter()
                translator = provider.stream_translator(request, attempt.deployment)
                return OpenStream(stream, attempt.watch(chunks, translator), first, translator)
            raise plan.error()
        except BaseException:
            plan.close()
            raise

    def _plan(self, ctx: RequestContext, request: ClientRequest) -> Plan:
        plan = self.router.plan(request, ctx.complexity_reading)
        if plan.complexity is not None:
            ctx.complexity_tier, ctx.complexity_score = plan.complexity.tier.name, plan.complexity.score
            ctx.complexity_top = plan.top
        return plan

    @staticmethod
    def _attempting(ctx: RequestContext, plan: Plan, attempt: Attempt) -> Deployment:
        """What the request's record and response say of the attempt the plan returned."""
        ctx.deployment = attempt.deployment
        ctx.attempts = attempt.number
        ctx.attempted = plan.attempted
        ctx.fallback = attempt.fallback
        ctx.response_headers.update(attempt.headers())
        return attempt.deployment

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
        self, provider: Provider, request: ClientRequest, attempt: Attempt, plan: Plan
    ) -> tuple[UpstreamStream, AsyncIterator[bytes], bytes]:
        call = provider.build_call(request, attempt.deployment)
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

    async def refused(self, request_id: str, endpoint: Endpoint, error: GatewayError, api: str = "") -> None:
        """A request turned away before `serve` saw it (overload shedding): finished all the same."""
        ctx = RequestContext(request_id, endpoint, perf_counter(), api=api)
        ctx.status, ctx.error_type = error.status, error.type
        async with Exchange(ctx, self.finish):
            pass  # nothing was reserved: the exchange only records it

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

    async def finish(self, ctx: RequestContext, reservation: Any) -> None:
        """What ends every request: good, failed, refused or cancelled. Only an `Exchange` calls it.

        How it ended is built once as a `RequestOutcome`: the plugins' closing hooks are told it,
        settle takes it. Then the request's `RequestRecord` is built once, and it alone goes to
        every recorder."""
        self._give_slot(ctx)
        finished = perf_counter()
        if ctx.upload is not None:
            ctx.upload.close()
        usage, deployment = ctx.usage, ctx.deployment
        cost = top_cost = None
        if usage is not None and deployment is not None:
            cost = self.prices.cost(deployment, ctx.model, usage)
            if ctx.complexity_top is not None:
                top_cost = self.prices.cost_on(ctx.complexity_top, usage)
        status = ctx.status = ctx.status or (499 if ctx.cancelled else 500)  # as the older `on_error` reads it
        found = NO_FINDINGS
        outcome: RequestOutcome | None = None
        if ctx.plugins is not None or reservation is not None:
            # Built for those who take it (a frozen value costs about a microsecond a request).
            outcome = ctx.outcome = RequestOutcome(status, ctx.cancelled, usage, cost, ctx.error_type)
            if ctx.plugins is not None:
                found = await ctx.plugins.finish(ctx, outcome)  # a stream's `after` hooks, or `on_error`; never raises
        budgets: Sequence[BudgetUsage] = ()
        try:
            if reservation is not None and outcome is not None:
                budgets = await self.admission.settle(reservation, outcome)
        finally:
            # A settle that fails (or is cancelled) must not cost the request its ledger row,
            # nor one recorder's bug the others' record (or the client its finished answer).
            record = _record(ctx, status, cost, top_cost, finished, found, budgets)
            for recorder in self.recorders:
                try:
                    recorder.record(record)
                except Exception:
                    log.exception("recorder %s failed on request %s", type(recorder).__name__, ctx.request_id)
        if self.durable is not None:
            await self.durable()


class ExchangeCall:
    """The ASGI app the front door runs for one API request: the proxy serves it in one exchange."""

    __slots__ = ("dialect", "endpoint", "proxy", "request")

    def __init__(self, proxy: Proxy, request: Request, endpoint: Endpoint, dialect: Dialect) -> None:
        self.proxy = proxy
        self.request = request
        self.endpoint = endpoint
        self.dialect = dialect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.proxy.serve(self.request, self.endpoint, self.dialect, send)


# An unauthenticated client's model name is kept in the log and ledger no longer than this.
MAX_LOGGED_MODEL = 256


def _model_named(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else ""


def _admitted(ctx: RequestContext) -> ClientRequest:
    assert ctx.request is not None, "only an admitted request goes upstream"
    return ctx.request


def _client_request(
    ctx: RequestContext, principal: Principal, body: dict[str, Any], upload: Upload | None, headers: Mapping[str, str]
) -> ClientRequest:
    """The client's request, once its body is read and checked: what the stages below are handed."""
    endpoint = ctx.endpoint
    stream = endpoint in SSE_ENDPOINTS and body.get("stream") is True
    wants_usage = False
    if stream:
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    return ClientRequest(ctx.request_id, endpoint, ctx.api, principal, body["model"], body, upload, stream,
                         wants_usage, client_user(body), ctx.tags, headers)  # fmt: skip


def _read(ctx: RequestContext, read: Read) -> dict[str, Any]:
    """What the dialect's reader gave back: its own state for the adapters that serve it and the
    template it rendered for the record, placed; the body, returned (the request value's)."""
    ctx.dialect = read.state
    if read.template_id is not None:
        ctx.template_id, ctx.template_version = read.template_id, read.template_version
    return read.body


def _record(
    ctx: RequestContext,
    status: int,
    cost: Decimal | None,
    top_cost: Decimal | None,
    finished: float,
    found: PluginFindings,
    budgets: Sequence[BudgetUsage],
) -> RequestRecord:
    """The finished request's record, from what the stages returned (placed on the context), how it
    ended, what its plugins found and the budgets settle returned. Positional, in field order."""
    principal = ctx.principal
    return RequestRecord(
        ctx.request_id, ctx.endpoint, ctx.endpoint_name,
        ctx.started, finished, ctx.upstream_started, ctx.first_byte_at,
        principal.key_id if principal is not None else None,
        principal.key_prefix if principal is not None else None,
        principal.team_id if principal is not None else None,
        ctx.user, ctx.model, ctx.stream,
        ctx.deployment, ctx.attempts, ctx.attempted, ctx.fallback,
        status, ctx.error_type, ctx.cancelled, ctx.usage, cost, top_cost,
        ctx.cache_hit, ctx.saved_usd,
        {**ctx.tags, **found.tags} if found.tags else ctx.tags,
        found.decisions, budgets,
        ctx.complexity_tier, ctx.complexity_score, ctx.complexity_classified, ctx.complexity_reading,
        ctx.template_id, ctx.template_version,
        ctx.body, ctx.redacted_body, ctx.upload is not None,
    )  # fmt: skip


def _place(ctx: RequestContext, before: PluginsBefore) -> None:
    """What the plugins' `before` hooks gave back, where the rest of the request and its record read it."""
    request = ctx.request
    if request is not None and before.body is not request.body:  # a guardrail changed it: a new request value
        ctx.request = request.with_body(before.body)
    ctx.redacted_body = before.redacted
    ctx.decided_before = before.decisions
    ctx.response_headers.update(before.headers)
    if before.cache_hit:  # served from the cache: no tokens used, nothing owed, the saving noted
        ctx.cache_hit = True
        ctx.usage, ctx.saved_usd = None, before.saved_usd


def _deadline_passed(call: UpstreamCall) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"deployment {call.deployment_id} had not answered when the request's deadline passed",
        code=DEADLINE_CODE,
    )
