"""A fake of vLLM's OpenAI-compatible server: the core fake's API, vLLM's error envelope, and
`/health` and `/metrics`.

vLLM (from v0.10.1) nests errors like OpenAI but with an integer `code` and an exception name
as `type`; a bad key gets `{"error": "Unauthorized"}`. The load it reports on /metrics is set
with `POST /_fake/load {"waiting", "running", "kv_usage", "legacy_names", "healthy"}`;
`legacy_names` exports the KV-cache gauge under its old name, `vllm:gpu_cache_usage_perc`.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.fake.app import Answer, App, Request, json_answer
from gateway.fake.behaviour import DEFAULT_BEHAVIOUR, Behaviour, validate

TYPES = {400: "BadRequestError", 401: "Unauthorized", 404: "NotFoundError", 429: "TooManyRequests",
         500: "InternalServerError", 503: "ServiceUnavailable"}
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class VLLMFake(App):
    def __init__(self, behaviour: Behaviour = DEFAULT_BEHAVIOUR, require_key: str | None = None) -> None:
        super().__init__(validate(behaviour))
        self.require_key = require_key
        self.load: dict[str, Any] = {"waiting": 0, "running": 0, "kv_usage": 0.0, "legacy_names": False,
                                     "healthy": True}
        self._control[("POST", "/_fake/load")] = self._set_load

    def handle(self, req: Request) -> Answer:
        if req.method == "GET" and req.path == "/health":
            return Answer(200 if self.load["healthy"] else 503, b"")
        if req.method == "GET" and req.path == "/metrics":
            return Answer(200, self.metrics().encode(), headers=(("content-type", METRICS_TYPE),))
        return super().handle(req)

    def _answer(self, req: Request, body: Any, seq: int) -> Answer:
        if self.require_key is not None and req.headers.get("authorization") != f"Bearer {self.require_key}":
            return json_answer(401, {"error": "Unauthorized"})
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            words = sum(len(str(m.get("content") or "").split()) for m in body["messages"] if isinstance(m, dict))
            limit = self.behaviour.context_words
            if words > limit:
                return _vllm_error(400, f"This model's maximum context length is {limit} tokens. "
                                        f"However, you requested {words} tokens in the messages, Please reduce the "
                                        "length of the messages.")
        answer = super()._answer(req, body, seq)
        if answer.status >= 400 and answer.stream is None:
            error = orjson.loads(answer.body).get("error") or {}
            reshaped = _vllm_error(answer.status, str(error.get("message") or ""))
            reshaped.headers, reshaped.behaviour = answer.headers, answer.behaviour
            return reshaped
        return answer

    def metrics(self) -> str:
        kv_name = "vllm:gpu_cache_usage_perc" if self.load["legacy_names"] else "vllm:kv_cache_usage_perc"
        labels = '{engine="0",model_name="fake-model"}'
        return (
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{labels} {float(self.load['running'])}\n"
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{labels} {float(self.load['waiting'])}\n"
            "# HELP " + kv_name + " KV-cache usage. 1 means 100 percent usage.\n"
            "# TYPE " + kv_name + " gauge\n"
            f"{kv_name}{labels} {float(self.load['kv_usage'])}\n"
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
            "# TYPE vllm:prompt_tokens_total counter\n"
            f"vllm:prompt_tokens_total{labels} {float(self.stats.requests * 10)}\n"
        )

    def _set_load(self, req: Request) -> Answer:
        try:
            update = orjson.loads(req.body or b"{}")
        except orjson.JSONDecodeError:
            update = None
        if not isinstance(update, dict) or not set(update) <= set(self.load):
            return _vllm_error(400, f"expected an object with some of {sorted(self.load)}")
        self.load.update(update)
        return json_answer(200, self.load)


def _vllm_error(status: int, message: str) -> Answer:
    kind = TYPES.get(status, "InternalServerError" if status >= 500 else "BadRequestError")
    return json_answer(status, {"error": {"message": message, "type": kind, "param": None, "code": status}})
