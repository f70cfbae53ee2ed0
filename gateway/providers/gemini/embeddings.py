"""OpenAI embeddings <-> Gemini embedContent / batchEmbedContents. Pure.

Gemini's answers carry no token counts, so usage is estimated (about four characters a token).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from gateway.core.errors import InvalidRequest, UpstreamError
from gateway.core.types import Usage

_OPENAI_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    value = body["input"]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise InvalidRequest("This model's provider (gemini) embeds text only: 'input' must be a string or an array "
                         "of strings.", param="input")


def to_gemini_embeddings(body: dict[str, Any], model: str) -> tuple[str, dict[str, Any]]:
    """(method, body): embedContent for one input, batchEmbedContents for several."""
    texts = embedding_inputs(body)
    options: dict[str, Any] = {key: value for key, value in body.items() if key not in _OPENAI_FIELDS}
    dimensions = body.get("dimensions")
    if dimensions is not None:
        options["outputDimensionality"] = dimensions

    def request(text: str) -> dict[str, Any]:
        return {"content": {"parts": [{"text": text}]}, **options}

    if isinstance(body["input"], str):
        return "embedContent", request(texts[0])
    return "batchEmbedContents", {"requests": [{"model": f"models/{model}", **request(t)} for t in texts]}


def from_gemini_embeddings(response: dict[str, Any], body: dict[str, Any], model: str) -> tuple[dict[str, Any], Usage]:
    if isinstance(response.get("embedding"), dict):
        vectors = [response["embedding"].get("values")]
    else:
        embeddings = response.get("embeddings")
        vectors = [e.get("values") if isinstance(e, dict) else None for e in embeddings] \
            if isinstance(embeddings, list) else []
    if not vectors or not all(isinstance(v, list) for v in vectors):
        raise UpstreamError("gemini answered embeddings without vectors", status=502, type="server_error",
                            code="bad_upstream_response")
    as_base64 = body.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": i,
         "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if as_base64 else v}
        for i, v in enumerate(vectors)
    ]
    tokens = sum(max(1, len(text) // 4) for text in embedding_inputs(body))
    usage = Usage(prompt_tokens=tokens, estimated=True)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}, usage
