"""Reading and checking what a client sent, before anything is sent upstream."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from gateway.core.errors import InvalidRequest, PayloadTooLarge
from gateway.core.types import Endpoint
from gateway.core.upload import Upload

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


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    # Straight from ASGI messages: most bodies arrive in one, and this is the hot path.
    parts: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            raise _too_large(limit)
        if not message.get("more_body", False):
            if not parts:
                return part
            parts.append(part)
            return b"".join(parts)
        parts.append(part)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than this gateway's limit of {limit} bytes.")


def parse_body(raw: bytes, endpoint: Endpoint) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. Send valid JSON with "
            "'Content-Type: application/json'."
        ) from None
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
