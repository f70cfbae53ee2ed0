"""OpenAI's Responses API in front of the normal proxy path.

    POST   /v1/responses                      create (unary or streamed)
    GET    /v1/responses/{id}                 a stored response
    DELETE /v1/responses/{id}
    GET    /v1/responses/{id}/input_items     the items its turn took as input, paged

`create` reads the body into a neutral chat request (with the conversation a
`previous_response_id` stands for) and hands it to the proxy (`ResponsesDialect`), so auth, limits, routing,
plugins and accounting apply as on chat. A deployment that speaks the Responses API natively gets
the client's request relayed and answers in the API's own shape (adapters.py); any other answers
in chat's, which is written back here as a `response` object, or as an event stream by
`ResponsesWriter`, which the relay calls. Which of the two an answer is, the writers learn from
the deployment that gave it (`ctx.deployment`, the attempt's); the response they store is the one
they are handed (a native stream's, from its terminal event as it passes). A stored response is
saved, once, before its last event (or its body) reaches the client, so a next turn can name it at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from gateway.config.file import Deployment
from gateway.core.errors import GatewayError, InvalidRequest, NotFound
from gateway.core.types import Principal
from gateway.dialects.responses.adapters import echoed, relays_natively, terminal_response
from gateway.dialects.responses.prompt import TemplateUse, with_template
from gateway.dialects.responses.request import parse, read, required
from gateway.dialects.responses.response import new_response_id, to_response
from gateway.dialects.responses.store import ResponseStore, owner_of
from gateway.dialects.responses.stream import ResponsesStreamWriter
from gateway.dialects.responses.turn import ResponsesTurn
from gateway.edge.responses import JSONReply, json_response
from gateway.identity.auth import Authenticator, client_address
from gateway.identity.store.sql import Database
from gateway.pipeline.context import RequestContext
from gateway.pipeline.dialect import ErrorReply, Read
from gateway.prompts.apply import PromptTemplates

log = logging.getLogger("gateway")

# (request id, method, path, status, principal, endpoint): gateway/observability/logs.py's `plain`.
LogLine = Callable[[str | None, str, str, int, Principal | None, str], None]
Handler = Callable[[Request, Principal, str], Awaitable[Response]]
JSON = dict[str, Any]
# Stores a finished response: the turn, the response, the deployment that gave it (None: a cached answer).
Save = Callable[[ResponsesTurn, JSON, Deployment | None], Awaitable[None]]
_REPLACED = frozenset({"content-length", "content-type"})
ORDERS = ("asc", "desc")


class ResponsesApi:
    def __init__(self, auth: Authenticator, database: Callable[[], Database],
                 retention: timedelta, log_line: LogLine | None = None,
                 prompts: PromptTemplates | None = None) -> None:
        # Stored prompt templates (gateway/prompts/), for the `prompt` parameter.
        self.prompts = prompts
        # The request log's line for the calls that make no upstream call (retrieve, delete, input_items).
        self._log_line = log_line
        self.auth = auth
        # The key store's database, open once the app has started.
        self._database = database
        self._retention = retention
        self._store: ResponseStore | None = None

    @property
    def store(self) -> ResponseStore:
        if self._store is None:
            self._store = ResponseStore(self._database(), self._retention)
        return self._store

    # POST /v1/responses

    def dialect(self) -> ResponsesDialect:
        """One `create` call's dialect: it keeps the turn it reads for the answer it writes."""
        return ResponsesDialect(self)

    async def _read(self, raw: bytes, principal: Principal | None) -> ResponsesTurn:
        body = parse(raw)
        template: TemplateUse | None = None
        if body.get("prompt") is not None:
            if self.prompts is None:
                raise InvalidRequest("'prompt': saved prompts are not configured on this gateway.", param="prompt")
            version, rendered = await self.prompts.rendered(body["prompt"])
            body, template = with_template(body, version, rendered)
            required(body, templated=True)
        history: list[dict[str, Any]] = []
        previous = body.get("previous_response_id")
        if previous:
            found = await self.store.conversation(previous, _owner(principal), datetime.now(UTC))
            if found is None:
                raise NotFound(f"Previous response with id '{previous}' not found.", param="previous_response_id",
                               code="previous_response_not_found")
            history = found
        request = read(body, history, builtin_tools=True, template=template)
        return ResponsesTurn(request, body, history, principal, new_response_id(), int(time.time()))

    async def _unary_body(self, turn: ResponsesTurn, body: bytes | memoryview, deployment: Deployment | None) -> bytes:
        if relays_natively(deployment):
            # The native adapter's body (the upstream's response, echoed), or what an `after` hook
            # (a guardrail) changed it to: what is sent is what is stored.
            out = bytes(body)
            response = orjson.loads(out)
        else:
            # A chat completion: from a translated upstream, or the cache.
            completion = orjson.loads(body)
            response = to_response(completion if isinstance(completion, dict) else {}, turn.request, turn.id,
                                   turn.created_at)
            out = orjson.dumps(response)
        await self._save(turn, response, deployment)
        return out

    async def _save(self, turn: ResponsesTurn, response: JSON, deployment: Deployment | None) -> None:
        """Store the finished response when the client asked to (`store`, default true); a native
        one keeps its upstream's id, for the deployment that gave it."""
        if not turn.request.store or turn.principal is None:
            return
        await self.store.put(turn.principal, response, turn.request.input_items, datetime.now(UTC),
                             previous_response_id=turn.request.previous_response_id,
                             deployment=deployment.id if deployment is not None else None,
                             upstream_id=str(response.get("id")) if relays_natively(deployment) else None)

    # GET and DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items

    async def retrieve(self, request: Request) -> Response:
        return await self._logged(request, self._retrieve)

    async def delete(self, request: Request) -> Response:
        return await self._logged(request, self._delete)

    async def input_items(self, request: Request) -> Response:
        return await self._logged(request, self._input_items)

    async def _logged(self, request: Request, handle: Handler) -> Response:
        principal: Principal | None = None
        status = 500
        try:
            principal = await self.auth.authenticate(request.headers, client_address(request))
            response = await handle(request, principal, request.path_params["response_id"])
            status = response.status_code
            return response
        except GatewayError as error:
            status = error.status
            raise
        finally:
            if self._log_line is not None:
                self._log_line(request.scope.get("state", {}).get("request_id"), request.method, request.url.path,
                               status, principal, "responses")

    async def _retrieve(self, request: Request, principal: Principal, response_id: str) -> Response:
        record = await self.store.get(response_id, _owner(principal), datetime.now(UTC))
        if record is None:
            raise _not_found(response_id)
        return json_response(record.response)

    async def _delete(self, request: Request, principal: Principal, response_id: str) -> Response:
        if not await self.store.delete(response_id, _owner(principal), datetime.now(UTC)):
            raise _not_found(response_id)
        return json_response({"id": response_id, "object": "response", "deleted": True})

    async def _input_items(self, request: Request, principal: Principal, response_id: str) -> Response:
        query = request.query_params
        limit_text = query.get("limit", "20")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
            raise InvalidRequest("Invalid 'limit': expected an integer between 1 and 100.", param="limit")
        order = query.get("order", "desc")
        if order not in ORDERS:
            raise InvalidRequest("Invalid 'order': expected 'asc' or 'desc'.", param="order")
        page = await self.store.input_items(response_id, _owner(principal), datetime.now(UTC),
                                            after=query.get("after"), limit=int(limit_text), order=order)
        if page is None:
            raise _not_found(response_id)
        return json_response(page.body())


def _owner(principal: Principal | None) -> str:
    assert principal is not None, "authenticated before the body is read"
    return owner_of(principal)


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param="response_id")


class ResponsesDialect:
    """The Responses API on `create`: the body (with the conversation a `previous_response_id`
    stands for) read into a chat request, the answer written back and stored."""

    api = "responses"

    def __init__(self, api: ResponsesApi) -> None:
        self._api = api
        # The turn this call's reader made, for its writers: set once, by `read`.
        self.turn: ResponsesTurn | None = None

    async def read(self, raw: bytes, principal: Principal | None) -> Read:
        """The neutral chat request, with the turn (the proxy places it where the adapters read it,
        adapters.py) and the stored prompt it rendered, if any."""
        turn = self.turn = await self._api._read(raw, principal)
        template = turn.request.template
        if template is None:
            return Read(turn.request.chat, turn)
        return Read(turn.request.chat, turn, template.template_id, template.version)

    async def unary(self, reply: JSONReply, ctx: RequestContext) -> ASGIApp:
        assert self.turn is not None, "read before it is answered"
        headers = {k: v for k, v in (reply.headers or {}).items() if k not in _REPLACED}
        return JSONReply(await self._api._unary_body(self.turn, reply.body, ctx.deployment), reply.status, headers)

    def stream_writer(self, ctx: RequestContext) -> ResponsesWriter:
        assert self.turn is not None, "read before it is answered"
        return ResponsesWriter(self.turn, ctx, self._api._save)

    def error(self, error: GatewayError, request_id: str) -> ASGIApp:
        return ErrorReply(error, request_id)


class ResponsesWriter:
    """The neutral stream as the Responses API's events (stream.py); a native upstream's events,
    already the API's, pass as they are. The response is stored, once, before its terminal event
    goes out: the one this writer wrote, or a native stream's, taken from its terminal event.

    Made before the request is routed; from its first piece on (the head has gone out, so the
    attempt is settled) it writes as the deployment that answered (`ctx.deployment`) says."""

    __slots__ = ("_ctx", "_events", "_native", "_saved", "save", "turn")
    headers: Mapping[str, str] = MappingProxyType({})

    def __init__(self, turn: ResponsesTurn, ctx: RequestContext, save: Save) -> None:
        self.turn = turn
        self.save = save
        self._ctx = ctx
        self._events = ResponsesStreamWriter(turn.request, turn.id, turn.created_at)
        self._native: bool | None = None
        self._saved = False  # the response was handed to `save` (stored, or not to be)

    @property
    def native(self) -> bool:
        if self._native is None:
            self._native = relays_natively(self._ctx.deployment)
        return self._native

    async def feed(self, data: bytes) -> bytes:
        return await self._stored(data if self.native else self._events.feed(data))

    async def finish(self) -> bytes:
        return await self._stored(b"" if self.native else self._events.finish())

    async def error(self, error: GatewayError) -> bytes:
        body = error.body()
        return await self._stored(_native_error(body["error"]) if self.native else self._events.chunk(body))

    async def _stored(self, out: bytes) -> bytes:
        """`out`, once the response it finishes (if it does) is stored."""
        if self._saved:
            return out
        if self.native:
            # Whole events (the native translator's, through the chunk hooks): a terminal one
            # carries the whole response, as the client gets it.
            found = terminal_response(out)
            response = echoed(found, self.turn) if found is not None else None
        else:
            response = self._events.response
        if response is not None:
            self._saved = True
            await self._save_quietly(response)
        return out

    async def _save_quietly(self, response: JSON) -> None:
        # The stream has started: a store that fails cannot change its status any more.
        try:
            await self.save(self.turn, response, self._ctx.deployment)
        except GatewayError as error:
            log.warning("response %s could not be stored: %s", self.turn.id, error.message)


def _native_error(error: Any) -> bytes:
    """An error the gateway sends in-band (an OpenAI error object), as the Responses API's `error` event."""
    error = error if isinstance(error, dict) else {}
    event = {"type": "error", "sequence_number": 0, "code": error.get("code") or "server_error",
             "message": error.get("message") or "The stream failed.", "param": error.get("param")}
    return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
