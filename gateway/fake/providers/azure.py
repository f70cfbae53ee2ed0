"""A fake of Azure OpenAI's dated API: `/openai/deployments/{deployment}/{operation}?api-version=…`,
and of the v1 API's `POST /openai/v1/responses` (no api-version needed; the model names the deployment).

Bodies are the core fake's OpenAI bodies, with Azure's additions: `prompt_filter_results` and
per-choice `content_filter_results`, and streams that open with a chunk whose `choices` is
empty (`id: ""`, `created: 0`). The key goes in `api-key` (or an Entra bearer token); errors
use Azure's envelope (`code` as a string, e.g. "429").
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs

from gateway.fake import embeddings, replies
from gateway.fake.app import Answer, Request, json_answer
from gateway.fake.behaviour import DEFAULT_BEHAVIOUR, Behaviour
from gateway.fake.providers.base import ProviderApp, json_reply, sse_data
from gateway.fake.replies import JSON, Stream
from gateway.fake.responses import ResponsesFake

_SAFE = {"filtered": False, "severity": "safe"}
CONTENT_FILTER_RESULTS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
PROMPT_FILTER_RESULTS = [{"prompt_index": 0, "content_filter_results": CONTENT_FILTER_RESULTS}]
# The chunk Azure streams before any choice: only the prompt's filter results.
FILTER_CHUNK = sse_data({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                         "prompt_filter_results": PROMPT_FILTER_RESULTS})
MESSAGES = {
    401: "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
         "for an active subscription and use a correct regional API endpoint for your resource.",
    404: "Resource not found",
    429: "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {version} have exceeded "
         "token rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second.",
}


class AzureFake(ProviderApp):
    def __init__(self, behaviour: Behaviour = DEFAULT_BEHAVIOUR, require_key: str | None = None) -> None:
        super().__init__(behaviour, require_key)
        deployment = r"/openai/deployments/(?P<deployment>[^/]+)"
        self.routes = [
            ("POST", re.compile(deployment + r"/chat/completions"), self._chat),
            ("POST", re.compile(deployment + r"/completions"), self._operation(replies.completion)),
            ("POST", re.compile(deployment + r"/embeddings"), self._operation(embeddings.embeddings)),
            ("POST", re.compile(r"/openai/v1/responses"), self._responses),
        ]
        self._responses_fake = ResponsesFake()

    def authorize(self, req: Request) -> Answer | None:
        if self.require_key is not None and req.headers.get("api-key") != self.require_key \
                and req.headers.get("authorization") != f"Bearer {self.require_key}":
            return self.error(401)
        # [unverified] Azure answers a missing api-version with a 404 "Resource not found"; the v1 API
        # takes none.
        if not req.path.startswith("/openai/v1/") and not parse_qs(req.query).get("api-version"):
            return self.error(404)
        return None

    def error(self, status: int, message: str | None = None, behaviour: Behaviour | None = None) -> Answer:
        if status == 400:  # validation errors keep OpenAI's envelope on Azure
            body = replies.error_body(400)
            if message is not None:
                body["error"]["message"] = message
            return json_answer(400, body, behaviour)
        text = message or MESSAGES.get(status) or replies.error_body(status)["error"]["message"]
        answer = json_answer(status, {"error": {"code": str(status), "message": text.format(version="2024-10-21")}},
                             behaviour)
        if status == 429:
            answer.headers += (("retry-after-ms", "1000"), ("x-ms-region", "Fake Region"))
        return answer

    def _responses(self, req: Request, match: re.Match[str], body: JSON, b: Behaviour, seq: int) -> Answer:
        reply = self._responses_fake.create(body, b, seq, int(time.time()))
        if isinstance(reply, Stream):
            return Answer(200, stream=reply, behaviour=b)
        return json_reply(reply, b)

    def _operation(self, handler: Any) -> Any:
        def answer(req: Request, match: re.Match[str], body: JSON, b: Behaviour, seq: int) -> Answer:
            reply = handler({**body, "model": match["deployment"]}, b, seq, int(time.time()))
            if isinstance(reply, Stream):
                return Answer(200, stream=reply, behaviour=b)
            return json_reply(reply, b)

        return answer

    def _chat(self, req: Request, match: re.Match[str], body: JSON, b: Behaviour, seq: int) -> Answer:
        messages = body.get("messages")
        words = sum(len(_text(m.get("content")).split()) for m in messages if isinstance(m, dict)) \
            if isinstance(messages, list) else 0
        if words > b.context_words:
            return json_answer(400, {"error": {
                "message": f"This model's maximum context length is {b.context_words} tokens. However, your "
                           f"messages resulted in {words} tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}, b)
        reply = replies.chat({**body, "model": match["deployment"]}, b, seq, int(time.time()))
        if isinstance(reply, Stream):
            return Answer(200, stream=Stream(FILTER_CHUNK + reply.head, reply.events, reply.tail), behaviour=b)
        reply["prompt_filter_results"] = PROMPT_FILTER_RESULTS
        for choice in reply["choices"]:
            choice["content_filter_results"] = CONTENT_FILTER_RESULTS
        return json_reply(reply, b)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""
