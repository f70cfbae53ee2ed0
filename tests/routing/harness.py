"""In-process routing without sockets: a router on a fake clock, driven like the proxy drives it.

`drive` plays the proxy's attempt loop against a script of outcomes per deployment, so a test
states what each deployment answers and reads back what was tried, in order, and every wait.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.config.file import ModelGroup, config_from_dict
from gateway.core.errors import GatewayError
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Principal, Usage
from gateway.routing.plan import Attempt
from gateway.routing.router import Router

MESSAGES = [{"role": "user", "content": "hi"}]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += max(0.0, seconds)


def groups(models: list[dict[str, Any]]) -> list[ModelGroup]:
    """Model groups as the config loader builds them (ids assigned)."""
    config, _ = config_from_dict({"models": _with_urls(models)}, {"openai", "vllm"})
    return config.models


def router(models: list[dict[str, Any]], clock: FakeClock | None = None, seed: int = 7, **options: Any) -> Router:
    config, _ = config_from_dict({"models": _with_urls(models), "routing": options}, {"openai", "vllm"})
    clock = clock or FakeClock()
    return Router(config.models, config.routing, clock=clock, sleep=clock.sleep, rng=random.Random(seed))


def _with_urls(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for model in models:
        for d in model.get("deployments", []):
            d.setdefault("base_url", "http://127.0.0.1:9/v1")
    return models


CALLER = Principal(key_id="master", key_prefix="sk-master", is_master=True)


def request(model: str, *, stream: bool = False, headers: dict[str, str] | None = None,
            body: dict[str, Any] | None = None) -> ClientRequest:
    return ClientRequest("req-test", Endpoint.CHAT, "", CALLER, model, body or {"model": model, "messages": MESSAGES},
                         stream=stream, headers=headers or {})  # fmt: skip


# What a deployment answers: an error, or None for success. `took` is how long it takes.
Answer = GatewayError | None


@dataclass
class Script:
    answers: dict[str, list[Answer]]
    took: dict[str, float] = field(default_factory=dict)
    default: Answer = None

    def answer(self, deployment_id: str) -> Answer:
        queue = self.answers.get(deployment_id)
        if queue:
            return queue.pop(0) if len(queue) > 1 else queue[0]
        return self.default


@dataclass
class Run:
    tried: list[str]
    error: GatewayError | None
    request: ClientRequest
    # The last attempt the plan returned: what the proxy would tell the client and the ledger.
    last: Attempt | None = None


async def drive(r: Router, request: ClientRequest, script: Script, clock: FakeClock,
                on_attempt: Callable[[str], None] | None = None) -> Run:
    """The proxy's unary loop, with the upstream call replaced by the script."""
    plan = r.plan(request)
    tried: list[str] = []
    last: Attempt | None = None
    try:
        while (attempt := await plan.next()) is not None:
            last = attempt
            key = attempt.deployment.id or ""
            tried.append(key)
            if on_attempt:
                on_attempt(key)
            clock.now += script.took.get(key, 0.01)
            answer = script.answer(key)
            if answer is None:
                attempt.succeeded(Usage(prompt_tokens=10, completion_tokens=5))
                return Run(tried, None, request, last)
            attempt.failed(answer)
        return Run(tried, plan.error(), request, last)
    finally:
        plan.close()
