"""The fake's answers for OpenAI's non-text endpoints, and the rerank API of Cohere and Jina.

Images: `data` with one item per `n`, a URL or `b64_json`. Transcriptions and translations read a
multipart form (parsed here with the standard library's email parser, independently of the
gateway's) and bill the audio at 16,000 bytes a second, as whisper's `usage: {type: duration}`.
Speech answers bytes in pieces (one per reply token, so `inter_token_ms` and `drop_after` act on
it). Moderations flag inputs with the word "kill". Rerank scores documents by shared words.
"""

from __future__ import annotations

import base64
import math
import time
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from typing import Any

from gateway.fake.behaviour import Behaviour
from gateway.fake.replies import JSON, Stream, WireError, require_model

BYTES_PER_SECOND = 16_000
SPEECH_PIECE = b"\xff\xf3" + bytes(range(30))  # an MPEG audio frame header, then filler
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence")


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, Any], list[JSON]]:
    """Form fields (a repeated one as a list) and, per file, its field, name, type and size."""
    message = BytesParser(policy=default).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body)
    if not message.is_multipart():
        raise WireError(400, "Expected a multipart/form-data body.")
    fields: dict[str, Any] = {}
    files: list[JSON] = []
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        assert isinstance(payload, bytes)
        filename = part.get_filename()
        if filename is not None:
            files.append({"field": name, "filename": filename, "content_type": part.get_content_type(),
                          "size": len(payload)})
        elif name in fields:
            previous = fields[name]
            fields[name] = [*previous, payload.decode()] if isinstance(previous, list) else [previous, payload.decode()]
        else:
            fields[str(name)] = payload.decode()
    return fields, files


def images(req: JSON, b: Behaviour, seq: int, created: int) -> JSON:
    require_model(req)
    if not isinstance(req.get("prompt"), str):
        raise WireError(400, "Missing required parameter: 'prompt'.", param="prompt")
    n = req.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 10:
        raise WireError(400, "Invalid value for 'n': expected an integer from 1 to 10.", param="n")
    if req.get("response_format") == "b64_json":
        data = [{"b64_json": base64.b64encode(PNG_1PX).decode()} for _ in range(n)]
    else:
        data = [{"url": f"https://images.fake.invalid/{seq}-{i}.png"} for i in range(n)]
    return {"created": created, "data": [{**item, "revised_prompt": req["prompt"]} for item in data]}


def image_edit(fields: dict[str, Any], files: list[JSON], seq: int) -> JSON:
    if not any(f["field"] in ("image", "image[]") for f in files):
        raise WireError(400, "Missing required parameter: 'image'.", param="image")
    request = {**fields, "n": int(fields.get("n") or 1)}
    return images(request, Behaviour(), seq, int(time.time()))


def transcription(fields: dict[str, Any], files: list[JSON], translate: bool) -> tuple[str, Any]:
    """(content type, answer) for a transcription or translation form."""
    if not isinstance(fields.get("model"), str):
        raise WireError(400, "you must provide a model parameter", param="model")
    audio = next((f for f in files if f["field"] == "file"), None)
    if audio is None:
        raise WireError(400, "Missing required parameter: 'file'.", param="file")
    seconds = max(1, math.ceil(audio["size"] / BYTES_PER_SECOND))
    text = f"{'translated' if translate else 'transcribed'} {audio['size']} bytes of {audio['filename']}"
    form = fields.get("response_format") or "json"
    if form in ("text", "srt", "vtt"):
        return "text/plain; charset=utf-8", text + "\n"
    if form == "verbose_json":
        return "application/json", {"task": "translate" if translate else "transcribe", "language": "english",
                                    "duration": float(seconds), "text": text, "segments": []}
    return "application/json", {"text": text, "usage": {"type": "duration", "seconds": seconds}}


def speech(req: JSON, b: Behaviour) -> Stream:
    require_model(req)
    if not isinstance(req.get("input"), str) or not req["input"]:
        raise WireError(400, "Missing required parameter: 'input'.", param="input")
    if not isinstance(req.get("voice"), str | dict):
        raise WireError(400, "Missing required parameter: 'voice'.", param="voice")
    pieces = max(1, b.tokens)
    return Stream(head=b"", events=[SPEECH_PIECE] * pieces, tail=b"", on_error=lambda _: b"")


def moderations(req: JSON, b: Behaviour, seq: int, created: int) -> JSON:
    inputs = req.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise WireError(400, "Invalid value for 'input'.", param="input")
    results = []
    for text in texts:
        violent = "kill" in text.lower()
        results.append({"flagged": violent, "categories": {c: violent and c == "violence" for c in CATEGORIES},
                        "category_scores": {c: 0.98 if violent and c == "violence" else 0.001 for c in CATEGORIES}})
    return {"id": f"modr-fake{seq:010d}", "model": req.get("model") or "omni-moderation-latest", "results": results}


def rerank(req: JSON, b: Behaviour, seq: int, created: int) -> JSON:
    require_model(req)
    query, documents = req.get("query"), req.get("documents")
    if not isinstance(query, str) or not isinstance(documents, list) or not documents:
        raise WireError(400, "'query' (a string) and 'documents' (a non-empty list) are required.", param="documents")
    texts = [d if isinstance(d, str) else str(d.get("text", "")) if isinstance(d, dict) else "" for d in documents]
    words = set(query.lower().split())
    scored = [(len(words & set(t.lower().split())) / (len(words) or 1), i) for i, t in enumerate(texts)]
    scored.sort(key=lambda s: (-s[0], s[1]))
    top_n = req.get("top_n")
    if isinstance(top_n, int) and top_n > 0:
        scored = scored[:top_n]
    results: list[JSON] = []
    for score, i in scored:
        result: JSON = {"index": i, "relevance_score": round(score, 4)}
        if req.get("return_documents"):
            result["document"] = {"text": texts[i]}
        results.append(result)
    tokens = len(query.split()) + sum(len(t.split()) for t in texts)
    return {"id": f"rerank-fake{seq:010d}", "model": req["model"], "results": results,
            "usage": {"total_tokens": tokens}}
