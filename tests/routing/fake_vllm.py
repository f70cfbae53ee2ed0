"""A fake vLLM replica: OpenAI chat on a real socket, Prometheus `/metrics`, and a prefix cache.

    python -m tests.routing.fake_vllm --port 8101 [--latency-ms 20] [--fail-rate 0.2] [--seed 1]

It models what routing cares about and nothing more:
- a batch of at most `max_running` requests; the rest wait, and `/metrics` shows both gauges
  (`vllm:num_requests_running`, `vllm:num_requests_waiting`) and the KV-cache gauge under the new
  or the old name (`vllm:kv_cache_usage_perc` / `vllm:gpu_cache_usage_perc`);
- a prefix cache: the prompt is cut in blocks chained by hash, kept in an LRU of `cache_blocks`;
  leading blocks already cached are hits, counted in `vllm:prefix_cache_hits_total` (in tokens,
  as vLLM does) and reported as `cached_tokens`; uncached tokens cost prefill time;
- failures on command: `POST /_fake/behaviour` changes any field of `Behaviour` for the requests
  that follow (status, retry-after, error code, latency, failure rate, drop mid-stream), and can pin
  the reported load (`report`) so a test knows what the router reads.
`GET /_fake/stats` tells what it served: each request's id, arrival time (CLOCK_MONOTONIC, the same
clock in every process of the machine, so several replicas' logs merge in order) and status.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

CHARS_PER_TOKEN = 4


@dataclass
class Behaviour:
    latency_ms: float = 0.0
    # Prefill time per thousand prompt tokens not found in the prefix cache.
    prefill_ms_per_ktok: float = 0.0
    tokens: int = 8
    inter_token_ms: float = 0.0
    status: int = 200
    error_code: str | None = None
    retry_after: float | None = None
    fail_rate: float = 0.0
    drop_after: int | None = None
    max_running: int = 64
    old_metric_names: bool = False
    # {"waiting": n, "running": n, "kv": 0..1}: what /metrics says, whatever really runs.
    report: dict[str, float] | None = None


@dataclass
class Served:
    request_id: str
    model: str
    at: float
    status: int
    cached_tokens: int


@dataclass
class PrefixCache:
    capacity_blocks: int
    block_chars: int
    _blocks: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    queries_tokens: int = 0
    hits_tokens: int = 0

    def lookup(self, text: str) -> tuple[int, int]:
        """(prompt tokens, of which cached), and the prompt's blocks are cached from now on."""
        digest = b""
        hit_blocks, leading = 0, True
        blocks = [text[i : i + self.block_chars] for i in range(0, len(text), self.block_chars)]
        for block in blocks:
            digest = hashlib.blake2b(digest + block.encode(), digest_size=16).digest()
            if leading and digest in self._blocks:
                hit_blocks += 1
                self._blocks.move_to_end(digest)
            else:
                leading = False
                self._blocks[digest] = None
                if len(self._blocks) > self.capacity_blocks:
                    self._blocks.popitem(last=False)
        tokens = max(1, len(text) // CHARS_PER_TOKEN)
        cached = min(tokens, hit_blocks * self.block_chars // CHARS_PER_TOKEN)
        self.queries_tokens += tokens
        self.hits_tokens += cached
        return tokens, cached


class Replica:
    def __init__(self, name: str, behaviour: Behaviour, cache: PrefixCache, seed: int) -> None:
        self.name = name
        self.behaviour = behaviour
        self.cache = cache
        self.rng = random.Random(seed)
        self.running = 0
        self.waiting = 0
        self.scrapes = 0
        self.served: list[Served] = []
        self._slots = asyncio.Semaphore(behaviour.max_running)

    async def chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        request_id = request.headers.get("x-request-id", "")
        model = str(body.get("model", ""))
        arrived = time.monotonic()
        b = self.behaviour
        status = b.status
        if status == 200 and b.fail_rate and self.rng.random() < b.fail_rate:
            status = 500
        if status != 200:
            self.served.append(Served(request_id, model, arrived, status, 0))
            await asyncio.sleep(b.latency_ms / 1000)
            return _error(status, b.error_code, b.retry_after)
        prompt = "".join(f"<{m.get('role')}>{m.get('content')}" for m in body.get("messages", []))
        self.waiting += 1
        await self._slots.acquire()
        self.waiting -= 1
        self.running += 1
        streaming = False
        try:
            prompt_tokens, cached = self.cache.lookup(prompt)
            self.served.append(Served(request_id, model, arrived, 200, cached))
            prefill = (prompt_tokens - cached) / 1000 * b.prefill_ms_per_ktok
            await asyncio.sleep((b.latency_ms + prefill) / 1000)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": b.tokens,
                "total_tokens": prompt_tokens + b.tokens,
                "prompt_tokens_details": {"cached_tokens": cached},
            }
            if body.get("stream"):
                want_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                streaming = True  # the stream gives the batch slot back when it ends
                return StreamingResponse(self._stream(body, usage, want_usage), media_type="text/event-stream")
            return Response(orjson.dumps(_completion(body, self.name, b.tokens, usage)),
                            media_type="application/json")
        finally:
            if not streaming:
                self._release()

    async def _stream(self, body: dict[str, Any], usage: dict[str, Any], want_usage: bool) -> AsyncIterator[bytes]:
        b = self.behaviour
        try:
            base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
            yield _event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
            for i in range(b.tokens):
                if b.drop_after is not None and i >= b.drop_after:
                    raise ConnectionAbortedError("the fake drops the stream on purpose")
                if b.inter_token_ms:
                    await asyncio.sleep(b.inter_token_ms / 1000)
                yield _event({**base, "choices": [{"index": 0, "delta": {"content": f"{self.name} "}}]})
            yield _event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if want_usage:
                yield _event({**base, "choices": [], "usage": usage})
            yield b"data: [DONE]\n\n"
        finally:
            self._release()

    def _release(self) -> None:
        self.running -= 1
        self._slots.release()

    def metrics(self, request: Request) -> Response:
        self.scrapes += 1
        b = self.behaviour
        report = b.report or {}
        waiting = report.get("waiting", self.waiting)
        running = report.get("running", self.running)
        kv = report.get("kv", self.running / max(1, b.max_running))
        kv_name = "vllm:gpu_cache_usage_perc" if b.old_metric_names else "vllm:kv_cache_usage_perc"
        label = f'{{model_name="{self.name}",engine="0"}}'
        text = "\n".join([
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{label} {running}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{label} {waiting}",
            f"# HELP {kv_name} KV-cache usage. 1 means 100 percent usage.",
            f"# TYPE {kv_name} gauge",
            f"{kv_name}{label} {kv}",
            "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.",
            "# TYPE vllm:prefix_cache_queries_total counter",
            f"vllm:prefix_cache_queries_total{label} {self.cache.queries_tokens}",
            "# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.",
            "# TYPE vllm:prefix_cache_hits_total counter",
            f"vllm:prefix_cache_hits_total{label} {self.cache.hits_tokens}",
            "",
        ])
        return Response(text, media_type="text/plain; version=0.0.4")

    async def set_behaviour(self, request: Request) -> Response:
        changes = orjson.loads(await request.body())
        self.behaviour = dataclasses.replace(self.behaviour, **changes)
        return Response(orjson.dumps(dataclasses.asdict(self.behaviour)), media_type="application/json")

    def stats(self, request: Request) -> Response:
        return Response(orjson.dumps({
            "name": self.name,
            "scrapes": self.scrapes,
            "served": [dataclasses.asdict(s) for s in self.served],
            "prefix_cache": {"queries_tokens": self.cache.queries_tokens, "hits_tokens": self.cache.hits_tokens},
        }), media_type="application/json")

    def reset(self, request: Request) -> Response:
        self.served.clear()
        self.cache = PrefixCache(self.cache.capacity_blocks, self.cache.block_chars)
        return Response(b"{}", media_type="application/json")


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _completion(body: dict[str, Any], name: str, tokens: int, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", ""),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join([name] * tokens)},
                     "finish_reason": "stop"}],
        "usage": usage,
    }


def _error(status: int, code: str | None, retry_after: float | None) -> Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 429:
        kind = "requests"
    message = {
        "context_length_exceeded": "This model's maximum context length is 8 tokens.",
        "content_policy_violation": "Your request was rejected by the safety system.",
    }.get(code or "", f"fake replica answers {status}")
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def build_app(replica: Replica) -> Starlette:
    return Starlette(routes=[
        Route("/v1/chat/completions", replica.chat, methods=["POST"]),
        Route("/metrics", replica.metrics, methods=["GET"]),
        Route("/_fake/behaviour", replica.set_behaviour, methods=["POST"]),
        Route("/_fake/stats", replica.stats, methods=["GET"]),
        Route("/_fake/reset", replica.reset, methods=["POST"]),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake vLLM replica for routing tests and simulations.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="replica")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--prefill-ms-per-ktok", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--max-running", type=int, default=64)
    parser.add_argument("--cache-blocks", type=int, default=4096)
    parser.add_argument("--block-chars", type=int, default=64)
    args = parser.parse_args(argv)
    behaviour = Behaviour(latency_ms=args.latency_ms, prefill_ms_per_ktok=args.prefill_ms_per_ktok,
                          tokens=args.tokens, fail_rate=args.fail_rate, max_running=args.max_running)
    replica = Replica(args.name, behaviour, PrefixCache(args.cache_blocks, args.block_chars), args.seed)
    uvicorn.run(build_app(replica), host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools")


if __name__ == "__main__":
    main()
