"""OpenAI's Responses API in front of the normal proxy path.

    POST   /v1/responses                      create (unary or streamed)
    GET    /v1/responses/{id}                 a stored response
    DELETE /v1/responses/{id}
    GET    /v1/responses/{id}/input_items     the items its turn took as input, paged

`create` reads the body into a neutral chat request (with the conversation a
`previous_response_id` stands for) and hands it to the proxy (`ResponsesDialect`), so auth, limits, routing,
plugins and accounting apply as on chat. A deployment that speaks the Responses API natively gets
the client's request relayed and answers in the API's own shape (adapters.py); any other answers
in chat's, which is written back here as a `response` object or event stream. A stored response
is saved before its last event (or its body) reaches the client, so a next turn can name it at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.core.errors import GatewayError, InvalidRequest, NotFound
from gateway.core.types import Principal
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
from gateway.pipeline.dialect import ErrorReply
from gateway.prompts.apply import PromptTemplates

log = logging.getLogger("gateway")

# (request id, method, path, status, principal, endpoint): gateway/observability/logs.py's `plain`.
LogLine = Callable[[str | None, str, str, int, Principal | None, str], None]
Handler = Callable[[Request, Principal, str], Awaitable[Response]]
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

    async def _unary_body(self, turn: ResponsesTurn, body: bytes | memoryview) -> bytes:
        if turn.native and turn.response is not None:
            out = bytes(body)
            if out != turn.relayed:
                turn.response = orjson.loads(out)  # an `after` hook (a guardrail) changed it: store what is sent
        else:
            # A chat completion: from a translated upstream, or the cache.
            completion = orjson.loads(body)
            turn.response = to_response(completion if isinstance(completion, dict) else {}, turn.request, turn.id,
                                        turn.created_at)
            out = orjson.dumps(turn.response)
        await self._save(turn)
        return out

    async def _save(self, turn: ResponsesTurn) -> None:
        """Store the finished response when the client asked to (`store`, default true)."""
        response = turn.response
        if turn.stored or response is None or not turn.request.store or turn.principal is None:
            return
        turn.stored = True
        await self.store.put(turn.principal, response, turn.request.input_items, datetime.now(UTC),
                             previous_response_id=turn.request.previous_response_id,
                             deployment=turn.deployment_id,
                             upstream_id=str(response.get("id")) if turn.native else None)

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
        self.turn: ResponsesTurn | None = None

    async def read(self, raw: bytes, ctx: RequestContext) -> dict[str, Any]:
        turn = self.turn = await self._api._read(raw, ctx.principal)
        ctx.dialect = turn
        if turn.request.template is not None:
            ctx.template_id, ctx.template_version = turn.request.template.template_id, turn.request.template.version
        return turn.request.chat

    async def unary(self, reply: JSONReply, ctx: RequestContext) -> ASGIApp:
        assert self.turn is not None, "read before it is answered"
        headers = {k: v for k, v in (reply.headers or {}).items() if k not in _REPLACED}
        return JSONReply(await self._api._unary_body(self.turn, reply.body), reply.status, headers)

    def stream(self, app: ASGIApp, ctx: RequestContext) -> ASGIApp:
        assert self.turn is not None, "read before it is answered"
        return ResponsesStream(app, self.turn, self._api._save)

    def error(self, error: GatewayError, request_id: str) -> ASGIApp:
        return ErrorReply(error, request_id)


class ResponsesStream:
    """Runs the proxy's stream and rewrites what it sends: chat chunks become Responses events
    (a native upstream's events pass as they are); the response is stored before its last event."""

    def __init__(self, call: ASGIApp, turn: ResponsesTurn,
                 save: Callable[[ResponsesTurn], Awaitable[None]]) -> None:
        self.call = call
        self.turn = turn
        self.save = save

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        turn = self.turn
        writer = ResponsesStreamWriter(turn.request, turn.id, turn.created_at)
        status = 200

        async def translated(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 200:
                more = message.get("more_body", False)
                data = message.get("body", b"")
                if turn.native:
                    body = _native_error(data) if data.startswith(b'data: {"error"') else data
                else:
                    body = writer.feed(data)
                    if not more:
                        body += writer.finish()
                    if writer.response is not None:
                        turn.response = writer.response
                if turn.response is not None and not turn.stored:
                    await self._save_quietly()
                message = {**message, "body": body}
            await send(message)

        await self.call(scope, receive, translated)

    async def _save_quietly(self) -> None:
        # The stream has started: a store that fails cannot change its status any more.
        try:
            await self.save(self.turn)
        except GatewayError as error:
            log.warning("response %s could not be stored: %s", self.turn.id, error.message)


def _native_error(data: bytes) -> bytes:
    """An error the gateway sends in-band (chat's shape) in the Responses API's `error` event."""
    try:
        error = orjson.loads(data.partition(b"data:")[2]).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        error = {}
    event = {"type": "error", "sequence_number": 0, "code": error.get("code") or "server_error",
             "message": error.get("message") or "The stream failed.", "param": error.get("param")}
    return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
