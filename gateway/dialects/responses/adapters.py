"""Which adapter serves a request on a deployment, where the Responses API is involved.

    /v1/responses on a "chat" deployment      the deployment's own provider, with the neutral chat
                                              body (the endpoint translates the answer back)
    /v1/responses on a "native" or "only" one `NativeResponses`: the client's request relayed to
                                              the upstream's `POST /responses`, its answer as it is
    chat (and messages) on an "only" one      `ChatViaResponses`: the backend/ translators

A deployment's kind is its `responses_api` setting, else native for OpenAI's own API and Azure's
v1 API, else chat; `relays_natively` says it for the chooser and for the dialect's writers alike,
so the writers learn how an answer came from the deployment that served it, not from the chooser.
Like every adapter these are pure translation plus URL and headers; the proxy does the I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError, InvalidRequest, UpstreamError
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, GuardrailDecision, StreamTranslator, Usage
from gateway.dialects.responses.backend.request import to_responses
from gateway.dialects.responses.backend.response import from_responses, usage_of
from gateway.dialects.responses.backend.stream import ResponsesEventTranslator
from gateway.dialects.responses.turn import ResponsesTurn
from gateway.providers.base import Provider, json_post, unsupported_endpoint, upstream_model
from gateway.providers.errors import map_openai_error
from gateway.upstream.client import UpstreamCall

JSON = dict[str, Any]
NATIVE_PROVIDERS = frozenset({"openai", "azure"})
# Markers of the events that end a Responses stream; in a JSON string value the quote after the
# name would be escaped, so these bytes appear only as the event's own type.
_TERMINAL = (b'"response.completed"', b'"response.incomplete"', b'"response.failed"')
# Fields the gateway reads and the upstream is not sent (Codex's `client_metadata` is not public API).
_NOT_RELAYED = ("previous_response_id", "client_metadata")


def responses_api(deployment: Deployment) -> str:
    if deployment.responses_api is not None:
        return deployment.responses_api
    if deployment.provider == "openai" and urlsplit(deployment.base_url).hostname == "api.openai.com":
        return "native"
    if deployment.provider == "azure" and deployment.api_version in ("v1", "preview"):
        return "native"
    return "chat"


def relays_natively(deployment: Deployment | None) -> bool:
    """Whether `/v1/responses` on `deployment` is relayed to its own Responses API: what the chooser
    picks by, and how the dialect's writers know the answer's shape (None, when no deployment
    answered, a cached answer: a chat completion)."""
    return deployment is not None and responses_api(deployment) != "chat"


def adapter_chooser(
    settings: Settings,
) -> Callable[[object | None, Sequence[GuardrailDecision], Deployment, Provider], Provider]:
    via_responses = ChatViaResponses(settings)

    def choose(
        state: object | None, decided: Sequence[GuardrailDecision], deployment: Deployment, provider: Provider
    ) -> Provider:
        """`state`: the dialect's reader's own (a Responses turn); `decided`: the `before` hooks' decisions."""
        turn = state if isinstance(state, ResponsesTurn) else None
        if turn is not None:
            if not relays_natively(deployment):
                turn.request.refuse_builtin_tools()
                return provider
            _check_native(deployment)
            # Bound to this request: its turn and what its guardrails did are not facts of the
            # client's request, which is all an adapter is handed.
            return NativeResponses(settings, turn, _masked(decided))
        if responses_api(deployment) == "only":
            _check_native(deployment)
            return via_responses
        return provider

    return choose


def _check_native(deployment: Deployment) -> None:
    if deployment.provider not in NATIVE_PROVIDERS:
        raise InvalidRequest(f"deployment {deployment.id}: responses_api {deployment.responses_api!r} needs "
                             f"provider openai or azure (it has {deployment.provider!r})",
                             code="unsupported_endpoint")


def native_call(deployment: Deployment, body: JSON, request_id: str, settings: Settings) -> UpstreamCall:
    """POST `body` to the deployment's Responses API: OpenAI's `/responses`, or Azure's v1 path."""
    headers = {"Content-Type": "application/json", "Accept-Encoding": "identity", "X-Request-Id": request_id}
    key = deployment.api_key.get_secret_value() if deployment.api_key is not None else None
    if deployment.provider == "azure":
        url = f"{deployment.base_url}/openai/v1/responses"
        if deployment.api_version not in (None, "v1"):
            url += f"?api-version={quote(deployment.api_version, safe='')}"
        if key is not None:
            headers["api-key"] = key
    else:
        url = f"{deployment.base_url}/responses"
        if key is not None:
            headers["Authorization"] = "Bearer " + key
    return json_post(deployment, url, headers, body, settings.upstream_timeout_s,
                     settings.upstream_connect_timeout_s)


def replayable(items: list[JSON]) -> list[JSON]:
    """Earlier turns' items as a native upstream takes them in `input`: without the gateway's item
    ids and statuses (the upstream never saw them), and without reasoning it cannot read back."""
    out: list[JSON] = []
    for item in items:
        if item.get("type") == "reasoning":
            if item.get("encrypted_content"):
                out.append(item)
            continue
        out.append({k: v for k, v in item.items() if k not in ("id", "status")})
    return out


def _masked(decisions: Sequence[GuardrailDecision]) -> bool:
    return any(d.where == "request" and d.action == "masked" for d in decisions)


def native_body(turn: ResponsesTurn, request: ClientRequest, model: str, masked: bool) -> JSON:
    body = {k: v for k, v in turn.body.items() if k not in _NOT_RELAYED}
    body["model"] = model
    template = turn.request.template
    if template is not None:
        template.refuse_native()
    if masked:
        # A guardrail rewrote the neutral request: send what it left, not what the client wrote
        # (all of it: the instructions, a template's messages and the history are in it too).
        body.pop("instructions", None)
        body["input"] = to_responses(request.body, model)["input"]
        return body
    # A stored prompt's messages come after the instructions and before the conversation, as on chat.
    before = [*(template.items if template is not None else ()), *replayable(turn.history)]
    body["input"] = [*before, *turn.request.input_items]
    return body


def echoed(response: JSON, turn: ResponsesTurn) -> JSON:
    """A native answer as this gateway's client sees it: the upstream was sent the history (not
    `previous_response_id`) and a stored prompt's messages (not the `prompt`)."""
    response["previous_response_id"] = turn.request.previous_response_id
    if turn.request.template is not None:
        response["prompt"] = turn.request.echo["prompt"]
        response["instructions"] = turn.request.echo["instructions"]
    return response


class NativeResponses:
    """`/v1/responses` relayed to an upstream that speaks it; the answer is the upstream's."""

    name = "responses"

    def __init__(self, settings: Settings, turn: ResponsesTurn, masked: bool = False) -> None:
        self.settings = settings
        self.turn = turn
        # A guardrail masked the neutral request: the upstream is sent what it left.
        self.masked = masked

    def build_call(self, request: ClientRequest, deployment: Deployment) -> UpstreamCall:
        body = native_body(self.turn, request, upstream_model(deployment, request.model), self.masked)
        return native_call(deployment, body, request.request_id, self.settings)

    def parse_response(self, request: ClientRequest, deployment: Deployment, body: bytes) -> tuple[bytes, Usage | None]:
        # The body relayed is the response to store: the dialect's writer is handed it (after the
        # plugins' `after` hooks, which may change it).
        response = echoed(_json_object(body, deployment), self.turn)
        return orjson.dumps(response), usage_of(response.get("usage"))

    def stream_translator(self, request: ClientRequest, deployment: Deployment) -> NativeStream:
        return NativeStream()

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
        return map_openai_error(status, headers, body, deployment_id)


class NativeStream:
    """Relays a native Responses stream as it comes, in whole events; parses only its terminal
    event (byte search), for the usage. The response to store is the dialect's writer's to take
    from the same event as it passes (after the chunk hooks, so with the text the client got)."""

    __slots__ = ("_buffer", "_events", "done", "usage")
    # Plugins that read a stream's text read these events, not chat chunks (gateway/plugins/responses_stream.py).
    events = "responses"

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.done = False
        self._buffer = b""
        self._events = 0  # relayed so far: the next event's sequence_number

    def feed(self, data: bytes) -> bytes:
        data = self._buffer + data
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buffer = data
            return b""
        complete, self._buffer = data[: end + 2], data[end + 2 :]
        self._events += complete.count(b"\n\n")
        if not self.done:
            response = terminal_response(complete)
            if response is not None:
                self.usage = usage_of(response.get("usage"))
                self.done = True
        return complete

    def finish(self) -> bytes:
        tail, self._buffer = self._buffer, b""
        out = self.feed(tail + b"\n\n") if tail.strip() else b""
        if not self.done:
            # The upstream stopped before its last event: say so, as the API does, in-band.
            self.done = True
            event = {"type": "error", "sequence_number": self._events, "code": "server_error", "param": None,
                     "message": "The upstream stream ended before the answer was complete."}
            out += b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
        return out


def terminal_response(events: bytes) -> JSON | None:
    """The `response` of the last terminal event (`response.completed`, `incomplete` or `failed`,
    each carrying the whole response) among whole Responses API events; None without one."""
    if not any(marker in events for marker in _TERMINAL):
        return None
    found: JSON | None = None
    for event in events.split(b"\n\n"):
        if not any(marker in event for marker in _TERMINAL):
            continue
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            try:
                data = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue
            response = data.get("response") if isinstance(data, dict) else None
            if isinstance(response, dict):
                found = response
    return found


class ChatViaResponses:
    """Chat requests (and /v1/messages, read into chat) for a deployment with only a Responses API."""

    name = "responses"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def build_call(self, request: ClientRequest, deployment: Deployment) -> UpstreamCall:
        if request.endpoint is not Endpoint.CHAT:
            raise unsupported_endpoint(f"{deployment.provider}, Responses API only", request.endpoint)
        body = to_responses(request.body, upstream_model(deployment, request.model))
        return native_call(deployment, body, request.request_id, self.settings)

    def parse_response(self, request: ClientRequest, deployment: Deployment, body: bytes) -> tuple[bytes, Usage | None]:
        response = _json_object(body, deployment)
        completion = from_responses(response, int(time.time()))
        return orjson.dumps(completion), usage_of(response.get("usage"))

    def stream_translator(self, request: ClientRequest, deployment: Deployment) -> StreamTranslator:
        return ResponsesEventTranslator(request.client_wants_usage, int(time.time()), request.model)

    def map_error(self, status: int, headers: dict[str, str], body: bytes, deployment_id: str) -> GatewayError:
        return map_openai_error(status, headers, body, deployment_id)


def _json_object(body: bytes, deployment: Deployment) -> JSON:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamError(f"deployment {deployment.id} returned a body that is not "
                            f"a JSON object", status=502, type="server_error", code="bad_upstream_response")
    return parsed
