"""Reading and checking what a client sent, before anything is sent upstream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from gateway.core.errors import InvalidRequest, PayloadTooLarge, RequestTimeout
from gateway.core.types import Endpoint
from gateway.core.upload import Upload

# The deepest nesting of arrays and objects a request body may have (docs/api.md): far beyond any
# real request (a JSON schema in `response_format` or `tools` included), well inside what orjson
# can write back out for the upstream.
MAX_JSON_DEPTH = 128
_NOT_JSON = (
    "We could not parse the JSON body of your request. Send valid JSON with 'Content-Type: application/json'."
)

# The field each endpoint cannot do without, and the JSON type it must have.
_REQUIRED: dict[Endpoint, tuple[str, tuple[type, ...]]] = {
    Endpoint.CHAT: ("messages", (list,)),
    Endpoint.COMPLETIONS: ("prompt", (str, list)),
    Endpoint.EMBEDDINGS: ("input", (str, list)),
    Endpoint.IMAGES: ("prompt", (str,)),
    Endpoint.SPEECH: ("input", (str,)),
    Endpoint.MODERATIONS: ("input", (str, list)),
    Endpoint.RERANK: ("query", (str,)),
}
# The file a multipart endpoint cannot do without.
_REQUIRED_FILE = {Endpoint.TRANSCRIPTIONS: "file", Endpoint.TRANSLATIONS: "file", Endpoint.IMAGE_EDITS: "image"}
# OpenAI's own default, for clients that leave the model out (the SDK's moderations.create may).
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"


# What `body_if_here` reads of a refused client's body at most: a request's head and a short prompt,
# for as long as a client that sends its body right after its headers takes to do so.
EARLY_BODY_BYTES = 64 * 1024
EARLY_BODY_WAIT_S = 0.2


async def body_if_here(request: Request, limit: int = EARLY_BODY_BYTES, wait_s: float = EARLY_BODY_WAIT_S) -> bytes:
    """The whole body when it is declared at most `limit` bytes and arrives within `wait_s`; else
    empty. It never invites a body (`Expect: 100-continue`) and gives up at once on anything else:
    for a client refused at authentication, whose body the gateway otherwise never reads, so that
    its log line can still name its model."""
    declared = request.headers.get("content-length")
    if not declared or not declared.isdigit() or int(declared) > limit or "expect" in request.headers:
        return b""
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(wait_s):
            while True:
                message = await request.receive()
                if message.get("type") != "http.request":
                    return b""
                part = message.get("body", b"")
                size += len(part)
                if size > limit:
                    return b""
                parts.append(part)
                if not message.get("more_body", False):
                    return b"".join(parts)
    except (TimeoutError, ClientDisconnect):
        return b""


async def read_body(request: Request, limit: int, total_s: float = 60.0, idle_s: float = 15.0) -> bytes:
    """The body, under its size cap; 408 if it takes longer than `total_s` in all or leaves a gap
    longer than `idle_s` (a client trickling bytes must not hold its slot for ever)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    await receive_body(request, limit, total_s, idle_s, parts.append)
    # Most bodies arrive in one part: that part itself, no copy.
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def receive_body(
    request: Request, limit: int, total_s: float, idle_s: float, take: Callable[[bytes], object]
) -> None:
    """Hand each part of the body to `take` as it arrives, straight from the ASGI messages; never
    more than `limit` bytes in all (413), and 408 past `total_s` in all or a gap over `idle_s`."""
    size = 0
    with BodyDeadline(total_s, idle_s) as deadline:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            part = message.get("body", b"")
            size += len(part)
            if size > limit:
                raise _too_large(limit)
            take(part)
            if not message.get("more_body", False):
                return
            deadline.part_came()


class BodyDeadline:
    """A body's two deadlines while it is read, `total_s` in all and `idle_s` between two of its
    parts, as one timer that cancels the reading task: leaving the block on the cancellation it
    caused raises the 408 (`too_slow`), any other cancellation passes through. What
    `asyncio.timeout` does, at a third of its cost on every request.

        with BodyDeadline(total_s, idle_s) as deadline:
            ...  # await each part; deadline.part_came() after each that is not the last
    """

    __slots__ = ("_already", "_end", "_expired", "_loop", "_task", "_timer", "idle_s", "total_s")

    def __init__(self, total_s: float, idle_s: float) -> None:
        self.total_s, self.idle_s = total_s, idle_s
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        # Cancellations the task was already under when the deadline began.
        self._already = self._task.cancelling() if self._task is not None else 0
        self._expired = False
        self._end = self._loop.time() + total_s
        self._timer = self._arm()

    def _arm(self) -> asyncio.TimerHandle:
        return self._loop.call_at(min(self._end, self._loop.time() + self.idle_s), self._expire)

    def _expire(self) -> None:
        if self._task is not None:
            self._expired = True
            self._task.cancel()

    def part_came(self) -> None:
        """A part arrived and more are to come: the gap to the next one starts now."""
        self._timer.cancel()
        self._timer = self._arm()

    def __enter__(self) -> BodyDeadline:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._timer.cancel()
        # The cancellation was this deadline's alone: withdraw it, and the client hears why.
        if (kind is asyncio.CancelledError and self._expired and self._task is not None
                and self._task.uncancel() <= self._already):  # fmt: skip
            raise too_slow(self._loop.time() >= self._end, self.total_s, self.idle_s) from None


def too_slow(in_all: bool, total_s: float, idle_s: float) -> RequestTimeout:
    """The 408 of a body that missed its deadline: in all, or between two of its parts."""
    slow = "in all" if in_all else "between two of its parts"
    limit_s = total_s if in_all else idle_s
    return RequestTimeout(f"The request body took longer than this gateway's limit of {limit_s:g} s {slow} to arrive.")


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than this gateway's limit of {limit} bytes.")


def load_json(raw: bytes, invalid: str = _NOT_JSON) -> Any:
    """The body as JSON, refused (400) when it nests deeper than MAX_JSON_DEPTH.

    orjson reads up to 1024 levels but writes only 254, so a deeper body that got in would fail
    later, when it is re-encoded for the upstream, as a 500.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise _too_deep() from None
        raise InvalidRequest(invalid) from None
    # Only a body with more brackets than the limit can be that deep: the count is C-fast, the walk is not.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _deeper_than(body, MAX_JSON_DEPTH):
        raise _too_deep()
    return body


def _deeper_than(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values() if isinstance(child, dict | list))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, dict | list))
    return False


def _too_deep() -> InvalidRequest:
    return InvalidRequest(
        f"The request body nests JSON deeper than this gateway's limit of {MAX_JSON_DEPTH} levels.",
        code="json_too_deep",
    )


def parse_body(raw: bytes, endpoint: Endpoint) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    body = load_json(raw)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if endpoint is Endpoint.MODERATIONS and "model" not in body:
        body["model"] = DEFAULT_MODERATION_MODEL
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("You must provide a model parameter.", param="model")
    field, types = _REQUIRED[endpoint]
    value = body.get(field)
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{field}'.", param=field, code="missing_required_parameter")
    if not isinstance(value, types) or (isinstance(value, list) and not value and endpoint is Endpoint.CHAT):
        raise InvalidRequest(f"Invalid value for '{field}'.", param=field, code="invalid_value")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("Invalid value for 'stream': expected a boolean.", param="stream", code="invalid_type")
    if endpoint is Endpoint.RERANK:
        documents = body.get("documents")
        if not isinstance(documents, list) or not documents:
            raise InvalidRequest("Missing required parameter: 'documents' (a non-empty list).", param="documents",
                                 code="missing_required_parameter")
    return body


def upload_body(upload: Upload, endpoint: Endpoint) -> dict[str, Any]:
    """An upload's form fields as the request body (a repeated field becomes a list), once checked."""
    body: dict[str, Any] = {}
    for name, value in upload.fields:
        if name in body:
            previous = body[name]
            body[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            body[name] = value
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("You must provide a model parameter.", param="model")
    required = _REQUIRED_FILE[endpoint]
    if not any(part.name in (required, required + "[]") for part in upload.files):
        raise InvalidRequest(f"Missing required parameter: '{required}' (a file).", param=required,
                             code="missing_required_parameter")
    return body
