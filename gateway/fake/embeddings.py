"""Deterministic embeddings: each vector derives from sha256 of its input, so tests can predict it."""

from __future__ import annotations

import base64
import hashlib
import struct

import orjson

from gateway.fake.behaviour import MAX_EMBEDDING_DIMS, Behaviour
from gateway.fake.replies import JSON, WireError, require_model


def _embedding_inputs(req: JSON) -> list[tuple[bytes, int]]:
    """(hash key, token count) per input."""
    value = req.get("input")
    if isinstance(value, str):
        return [(value.encode(), len(value.split()))]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return [(v.encode(), len(v.split())) for v in value]
        if all(isinstance(t, int) for t in value):
            return [(orjson.dumps(value), len(value))]
        if all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
            return [(orjson.dumps(v), len(v)) for v in value]
    raise WireError(400, "'input' must be a string, a list of strings or token arrays", param="input")


def embedding_vector(key: bytes, dims: int) -> list[float]:
    """A deterministic vector in [-1, 1) from sha256 of the input.

    Each value is k/32768 - 1 for a 16-bit k, exact in float32, so the base64 (float32) and the
    float answers decode to identical numbers.
    """
    blocks = [hashlib.sha256(key).digest()]
    while len(blocks) * 32 < 2 * dims:
        blocks.append(hashlib.sha256(blocks[-1]).digest())
    return [k / 32768 - 1 for k in struct.unpack(f"<{dims}H", b"".join(blocks)[: 2 * dims])]


def embeddings(req: JSON, b: Behaviour, seq: int, created: int) -> JSON:
    model = require_model(req)
    inputs = _embedding_inputs(req)
    dims = req.get("dimensions")
    if dims is None:
        dims = b.embedding_dims
    if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= MAX_EMBEDDING_DIMS:
        raise WireError(400, "'dimensions' must be a positive integer", param="dimensions")
    encoding = req.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise WireError(400, "'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    data = []
    for i, (key, _) in enumerate(inputs):
        vector: list[float] | str = embedding_vector(key, dims)
        if encoding == "base64":
            vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    body: JSON = {"object": "list", "data": data, "model": model}
    if b.usage:
        tokens = sum(count for _, count in inputs)
        body["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return body
