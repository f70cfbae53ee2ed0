"""What the fake upstream answers: routing, auth, directives, stats and request records. No I/O.

The server hands each parsed request to `App.handle` and plays back the `Answer`, honouring the
answer's behaviour (delays, drops) on the wire.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson

from gateway.fake import embeddings, media, replies
from gateway.fake.behaviour import Behaviour, DirectiveError, resolve
from gateway.fake.replies import JSON, Stream, WireError
from gateway.fake.responses import ResponsesFake

RECORDED_REQUESTS = 2000

Handler = Callable[[JSON, Behaviour, int, int], JSON | Stream]


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lowercased names
    body: bytes


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes = b""
    stream: Stream | None = None
    headers: tuple[tuple[str, str], ...] = ()
    behaviour: Behaviour | None = None  # None: answer at once, whatever the defaults say


@dataclass(slots=True)
class Stats:
    requests: int = 0
    streams_started: int = 0
    streams_completed: int = 0
    streams_cancelled: int = 0  # the client went away before the stream ended
    active_streams: int = 0

    def __getitem__(self, name: str) -> int:
        # Lets in-process callers read it like the JSON from /_fake/stats.
        if name not in self.as_dict():
            raise KeyError(name)
        return int(getattr(self, name))

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def stream_started(self) -> None:
        self.streams_started += 1
        self.active_streams += 1

    def stream_ended(self, *, completed: bool, cancelled: bool) -> None:
        # A stream the fake cut on purpose (drop_after) is neither completed nor cancelled.
        self.active_streams -= 1
        self.streams_completed += completed
        self.streams_cancelled += cancelled

    def reset(self) -> None:
        # active_streams counts live connections, which a reset does not end.
        self.requests = self.streams_started = self.streams_completed = self.streams_cancelled = 0


def _models(req: JSON, b: Behaviour, seq: int, created: int) -> JSON:
    return replies.models_list()


API_ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/chat/completions"): replies.chat,
    ("POST", "/v1/completions"): replies.completion,
    ("POST", "/v1/embeddings"): embeddings.embeddings,
    ("GET", "/v1/models"): _models,
    ("POST", "/v1/images/generations"): media.images,
    ("POST", "/v1/moderations"): media.moderations,
    ("POST", "/v1/rerank"): media.rerank,
    ("POST", "/v1/audio/speech"): lambda req, b, seq, created: media.speech(req, b),
}
# Multipart uploads: path -> whether the audio is translated (None: an image edit).
FORM_ROUTES: dict[str, bool | None] = {"/v1/audio/transcriptions": False, "/v1/audio/translations": True,
                                       "/v1/images/edits": None}
SPEECH_TYPE = (("content-type", "audio/mpeg"),)


@dataclass(slots=True)
class Form:
    fields: dict[str, Any]
    files: list[JSON]
MODEL_PREFIX = "/v1/models/"


def _route(routes: dict[tuple[str, str], Handler], method: str, path: str) -> Handler | None:
    handler = routes.get((method, path))
    if handler is None and method == "GET" and path.startswith(MODEL_PREFIX) and len(path) > len(MODEL_PREFIX):
        model_id = path[len(MODEL_PREFIX) :]
        return lambda *_: replies.model_object(model_id)
    return handler


def json_answer(status: int, obj: Any, behaviour: Behaviour | None = None) -> Answer:
    return Answer(status, orjson.dumps(obj), behaviour=behaviour)


def _error(exc: WireError, behaviour: Behaviour | None = None) -> Answer:
    return json_answer(exc.status, exc.body(), behaviour)


_UNPARSABLE = object()


def _parse_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _UNPARSABLE


class App:
    def __init__(self, behaviour: Behaviour, require_key: str | None = None):
        self.behaviour = behaviour
        self.stats = Stats()
        self.requests: deque[JSON] = deque(maxlen=RECORDED_REQUESTS)
        self._authorization = None if require_key is None else f"Bearer {require_key}"
        self._seq = itertools.count(1)
        # The Responses API keeps what it answered (previous_response_id): a handler with state.
        self.api_routes: dict[tuple[str, str], Handler] = {**API_ROUTES,
                                                            ("POST", "/v1/responses"): ResponsesFake().create}
        self._control: dict[tuple[str, str], Callable[[Request], Answer]] = {
            ("GET", "/_fake/stats"): lambda req: json_answer(200, self.stats.as_dict()),
            ("GET", "/_fake/requests"): self._recorded,
            ("POST", "/_fake/reset"): self._reset,
        }

    def recorded(self, request_id: str | None = None) -> list[JSON]:
        """Recorded requests, optionally only those whose x-request-id header is `request_id`."""
        if request_id is None:
            return list(self.requests)
        return [r for r in self.requests if r["headers"].get("x-request-id") == request_id]

    def handle(self, req: Request) -> Answer:
        if req.path.startswith("/_fake/"):
            control = self._control.get((req.method, req.path))
            if control is None:
                return _error(WireError(404, f"Invalid URL ({req.method} {req.path})"))
            return control(req)
        self.stats.requests += 1
        seq = next(self._seq)
        body = _parse_body(req.body)
        if body is _UNPARSABLE and req.headers.get("content-type", "").startswith("multipart/form-data"):
            try:
                body = Form(*media.parse_form(req.headers["content-type"], req.body))
            except WireError:
                pass
        recorded_body = None if body is _UNPARSABLE else {**body.fields, "files": body.files} if isinstance(
            body, Form) else body
        self.requests.append({"method": req.method, "path": req.path, "headers": req.headers, "body": recorded_body})
        answer = self._answer(req, body, seq)
        request_id = req.headers.get("x-request-id") or f"req_fake{seq:010d}"
        answer.headers += (("x-request-id", request_id),)
        return answer

    def _answer(self, req: Request, body: Any, seq: int) -> Answer:
        if self._authorization is not None and req.headers.get("authorization") != self._authorization:
            return _error(WireError(401, "Incorrect API key provided.", code="invalid_api_key"))
        if req.method == "POST" and req.path in FORM_ROUTES:
            return self._form(req, body)
        handler = _route(self.api_routes, req.method, req.path)
        if handler is None:
            return _error(WireError(404, f"Invalid URL ({req.method} {req.path})"))
        if body is _UNPARSABLE or (req.method == "POST" and not isinstance(body, dict)):
            return _error(WireError(400, "We could not parse the JSON body of your request."))
        fields: JSON = body if isinstance(body, dict) else {}
        try:
            b = resolve(self.behaviour, fields.get("fake"), req.headers)
        except DirectiveError as exc:
            return _error(WireError(400, str(exc), param="fake"))
        if b.status != 200:
            answer = json_answer(b.status, replies.error_body(b.status), b)
            if b.retry_after is not None:
                answer.headers = (("retry-after", f"{b.retry_after:g}"),)
            return answer
        try:
            reply = handler(fields, b, seq, int(time.time()))
        except WireError as exc:
            return _error(exc, b)
        if isinstance(reply, Stream):
            return Answer(200, stream=reply, behaviour=b, headers=SPEECH_TYPE if req.path.endswith("/speech") else ())
        return json_answer(200, reply, b)

    def _form(self, req: Request, body: Any) -> Answer:
        if not isinstance(body, Form):
            return _error(WireError(400, "Expected a multipart/form-data body with a 'file'."))
        try:
            # A form carries directives as a `fake` field holding JSON.
            directives = orjson.loads(body.fields["fake"]) if "fake" in body.fields else None
            b = resolve(self.behaviour, directives, req.headers)
        except (DirectiveError, orjson.JSONDecodeError) as exc:
            return _error(WireError(400, str(exc), param="fake"))
        if b.status != 200:
            return json_answer(b.status, replies.error_body(b.status), b)
        try:
            translate = FORM_ROUTES[req.path]
            if translate is None:
                return json_answer(200, media.image_edit(body.fields, body.files, next(self._seq)), b)
            content_type, answer = media.transcription(body.fields, body.files, translate)
        except WireError as exc:
            return _error(exc, b)
        if isinstance(answer, str):
            return Answer(200, answer.encode(), headers=(("content-type", content_type),), behaviour=b)
        return json_answer(200, answer, b)

    def _recorded(self, req: Request) -> Answer:
        request_id = parse_qs(req.query).get("request_id", [None])[0]
        return json_answer(200, self.recorded(request_id))

    def _reset(self, req: Request) -> Answer:
        self.stats.reset()
        self.requests.clear()
        return json_answer(200, self.stats.as_dict())
