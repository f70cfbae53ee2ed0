"""A fake of Google's Gemini API (`/v1beta/models/{model}:{method}`, `x-goog-api-key` or `?key=`).

generateContent, streamGenerateContent (`alt=sse`: SSE frames of whole responses, no end
marker; without it one JSON array), embedContent and batchEmbedContents, with Google's error
envelope. Like the real API it refuses unknown fields (also inside function parameter
schemas), and for `gemini-3*` models it wants the thought signature of an earlier function
call back. The reply echoes the last user text, like the core fake.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

import orjson

from gateway.fake.app import Answer, Request, json_answer
from gateway.fake.behaviour import DEFAULT_BEHAVIOUR, Behaviour
from gateway.fake.embeddings import embedding_vector
from gateway.fake.providers.base import ProviderApp, ProviderStream, json_reply
from gateway.fake.replies import JSON, WireError, reply_pieces

STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
            409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
            503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
MESSAGES = {429: "Resource has been exhausted (e.g. check quota).", 500: "An internal error has occurred.",
            503: "The model is overloaded. Please try again later.", 504: "Deadline exceeded."}
REQUEST_FIELDS = frozenset({"contents", "systemInstruction", "generationConfig", "tools", "toolConfig",
                            "safetySettings", "cachedContent", "labels", "fake"})
GENERATION_FIELDS = frozenset({
    "temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "candidateCount", "seed", "presencePenalty",
    "frequencyPenalty", "responseMimeType", "responseSchema", "responseJsonSchema", "responseLogprobs", "logprobs",
    "thinkingConfig",
})
SCHEMA_FIELDS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering",
    "default", "items", "minimum", "maximum",
})
PART_FIELDS = frozenset({"text", "inlineData", "fileData", "functionCall", "functionResponse"})
SIGNATURE = "ZmFrZS10aG91Z2h0LXNpZ25hdHVyZQ=="
SSE_END = b"\r\n\r\n"  # Google's SSE frames end with CRLF pairs


class GeminiFake(ProviderApp):
    def __init__(self, behaviour: Behaviour = DEFAULT_BEHAVIOUR, require_key: str | None = None) -> None:
        super().__init__(behaviour, require_key)
        model = r"/v1beta/models/(?P<model>[^/:]+)"
        self.routes = [
            ("POST", re.compile(model + r":generateContent"), self._generate),
            ("POST", re.compile(model + r":streamGenerateContent"), self._generate),
            ("POST", re.compile(model + r":embedContent"), self._embed),
            ("POST", re.compile(model + r":batchEmbedContents"), self._batch_embed),
        ]

    def authorize(self, req: Request) -> Answer | None:
        if self.require_key is None:
            return None
        key = req.headers.get("x-goog-api-key") or parse_qs(req.query).get("key", [""])[0]
        if not key:
            return self.error(403, "Method doesn't allow unregistered callers (callers without established "
                                   "identity). Please use API Key or other form of API consumer identity to call "
                                   "this API.")
        if key != self.require_key:
            answer = self.error(400, "API key not valid. Please pass a valid API key.")
            body = orjson.loads(answer.body)
            body["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                         "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]
            answer.body = orjson.dumps(body)
            return answer
        return None

    def error(self, status: int, message: str | None = None, behaviour: Behaviour | None = None) -> Answer:
        error: JSON = {"code": status, "message": message or MESSAGES.get(status, "Request contains an invalid "
                                                                                   "argument."),
                       "status": STATUSES.get(status, "UNKNOWN")}
        if status == 429 and behaviour is not None and behaviour.retry_after is not None:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                 "retryDelay": f"{int(behaviour.retry_after)}s"}]
        return json_answer(status, {"error": error}, behaviour)

    def _generate(self, req: Request, match: re.Match[str], body: JSON, b: Behaviour, seq: int) -> Answer:
        model = match["model"]
        check_request(body, model)
        prompt_words = _words(body)
        if prompt_words > b.context_words:
            raise WireError(400, f"The input token count ({prompt_words}) exceeds the maximum number of tokens "
                                 f"allowed ({b.context_words}).")
        pieces = reply_pieces(_last_user_text(body["contents"]).split(), b)
        config = body.get("generationConfig") or {}
        finish = "STOP"
        limit = config.get("maxOutputTokens")
        if isinstance(limit, int) and len(pieces) > limit:
            pieces, finish = pieces[:limit], "MAX_TOKENS"
        call = b.tool_call
        candidates = int(config.get("candidateCount") or 1)
        usage = {"promptTokenCount": prompt_words, "candidatesTokenCount": len(pieces) * candidates,
                 "totalTokenCount": prompt_words + len(pieces) * candidates}
        base = {"modelVersion": model, "responseId": f"fake-response-{seq:010d}"}

        def response(parts: list[JSON], reason: str | None, with_usage: bool) -> JSON:
            ending = {"finishReason": reason} if reason else {}
            out: JSON = {"candidates": [{"content": {"role": "model", "parts": parts}, "index": i, **ending}
                                        for i in range(candidates)], **base}
            if with_usage:
                out["usageMetadata"] = usage
            return out

        function_part: JSON | None = None
        if call is not None:
            function_part = {"functionCall": {"name": call["name"], "args": orjson.loads(call["arguments"] or "{}")},
                             "thoughtSignature": SIGNATURE}
        if not req.path.endswith(":streamGenerateContent"):
            parts: list[JSON] = [{"text": "".join(pieces)}] if function_part is None else [function_part]
            return json_reply(response(parts, finish, True), b)
        if function_part is not None:
            events = [response([function_part], None, False)]
        else:
            events = [response([{"text": piece}], None, False) for piece in pieces]
        last = response([{"text": ""}], finish, True)
        if "alt=sse" not in req.query:
            return json_reply([*events, last], b)
        frames = [b"data: " + orjson.dumps(e) + SSE_END for e in events]
        stream = ProviderStream(b"", frames, b"data: " + orjson.dumps(last) + SSE_END, on_error=_error_event)
        return Answer(200, stream=stream, behaviour=b)

    def _embed(self, req: Request, match: re.Match[str], body: JSON, b: Behaviour, seq: int) -> Answer:
        return json_reply({"embedding": _embedding(body, b)}, b)

    def _batch_embed(self, req: Request, match: re.Match[str], body: JSON, b: Behaviour, seq: int) -> Answer:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise WireError(400, "* BatchEmbedContentsRequest.requests: contents is not specified")
        for i, request in enumerate(requests):
            if not isinstance(request, dict) or request.get("model") != f"models/{match['model']}":
                raise WireError(400, f"* BatchEmbedContentsRequest.requests[{i}].model: unexpected model name "
                                     "format")
        return json_reply({"embeddings": [_embedding(r, b) for r in requests]}, b)


def _embedding(request: JSON, b: Behaviour) -> JSON:
    for field in request:
        if field not in ("model", "content", "taskType", "title", "outputDimensionality", "fake"):
            raise WireError(400, f'Invalid JSON payload received. Unknown name "{field}": Cannot find field.')
    content = request.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) and "text" in p for p in parts):
        raise WireError(400, "* EmbedContentRequest.content: contents is not specified")
    dims = request.get("outputDimensionality") or b.embedding_dims
    text = " ".join(p["text"] for p in parts)
    return {"values": embedding_vector(text.encode(), int(dims))}


def _error_event(after: int) -> bytes:
    error = {"code": 503, "message": MESSAGES[503], "status": "UNAVAILABLE"}
    return b"data: " + orjson.dumps({"error": error}) + SSE_END


def _texts(parts: list[JSON]) -> list[str]:
    texts = []
    for part in parts:
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("functionResponse"), dict):
            texts.append(orjson.dumps(part["functionResponse"].get("response")).decode())
    return texts


def _words(body: JSON) -> int:
    system = body.get("systemInstruction") or {}
    texts = _texts(system.get("parts") or [])
    for content in body["contents"]:
        texts.extend(_texts(content["parts"]))
    return sum(len(t.split()) for t in texts)


def _last_user_text(contents: list[JSON]) -> str:
    return " ".join(_texts(contents[-1]["parts"]))


def check_request(body: JSON, model: str) -> None:
    for field in body:
        if field not in REQUEST_FIELDS:
            raise WireError(400, f'Invalid JSON payload received. Unknown name "{field}": Cannot find field.')
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise WireError(400, "* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        if not isinstance(content, dict) or content.get("role") not in ("user", "model"):
            raise WireError(400, f"* GenerateContentRequest.contents[{i}].role: must be user or model")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise WireError(400, f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        for j, part in enumerate(parts):
            _check_part(part, f"contents[{i}].parts[{j}]", content["role"], model)
    system = body.get("systemInstruction")
    if system is not None and not (isinstance(system, dict) and isinstance(system.get("parts"), list)):
        raise WireError(400, "* GenerateContentRequest.system_instruction: parts must be a list")
    for key, value in (body.get("generationConfig") or {}).items():
        if key not in GENERATION_FIELDS:
            raise WireError(400, f'Invalid JSON payload received. Unknown name "{key}" at \'generation_config\': '
                                 "Cannot find field.")
        if key == "temperature" and not (isinstance(value, int | float) and 0 <= value <= 2):
            raise WireError(400, "* GenerateContentRequest.generation_config.temperature: must be in [0, 2]")
    for tool in body.get("tools") or ():
        for declaration in tool.get("functionDeclarations") or ():
            if not isinstance(declaration.get("name"), str):
                raise WireError(400, "* GenerateContentRequest.tools[0].function_declarations: name is required")
            _check_schema(declaration.get("parameters"), "parameters")
    mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")
    if mode is not None and mode not in ("AUTO", "ANY", "NONE", "VALIDATED"):
        raise WireError(400, f'Invalid value at \'tool_config.function_calling_config.mode\', "{mode}"')


def _check_part(part: Any, where: str, role: str, model: str) -> None:
    kinds = [k for k in PART_FIELDS if isinstance(part, dict) and k in part]
    if len(kinds) != 1:
        raise WireError(400, f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one "
                             "initialized field")
    if kinds[0] == "functionResponse":
        response = part["functionResponse"]
        if not isinstance(response.get("name"), str) or not isinstance(response.get("response"), dict):
            raise WireError(400, f"* GenerateContentRequest.{where}.function_response: name and response required")
    if kinds[0] == "functionCall" and role == "model" and "gemini-3" in model and "thoughtSignature" not in part:
        raise WireError(400, f"Function call is missing a thought_signature in functionCall parts ({where}).")


def _check_schema(schema: Any, where: str) -> None:
    if schema is None:
        return
    if not isinstance(schema, dict):
        raise WireError(400, f"Invalid JSON payload received at '{where}': expected an object")
    for key, value in schema.items():
        if key not in SCHEMA_FIELDS:
            raise WireError(400, f'Invalid JSON payload received. Unknown name "{key}" at \'{where}\': '
                                 "Cannot find field.")
        if key == "properties" and isinstance(value, dict):
            for name, sub in value.items():
                _check_schema(sub, f"{where}.properties[{name}]")
        elif key == "items":
            _check_schema(value, f"{where}.items")
