"""One request's way through its groups: which deployment to try next, when, and when to stop.

The router returns a `Plan`; the proxy asks it `next()` for an `Attempt` (the deployment to call,
its number, whether a fallback group serves it, the response headers that say so), makes the
call, and reports how it went on the attempt. The plan writes nothing into the request's context.
A round tries each available deployment of a group once; `retries` more rounds follow, each after
an exponential backoff with jitter; then the next group of the chain (the group's fallbacks).
Deployments cooling down after a 429 or over their caps are passed over while anything else can
be tried, and waited for (within the deadline) when nothing else can. A context-length error
or a content-policy refusal jumps to the group configured for it. A client's fault, the deadline
and the attempt budget end the plan. Streams stop planning at their first byte.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gateway.config.file import Deployment, ModelGroup
from gateway.core.errors import GatewayError, RateLimited, ServiceUnavailable, UpstreamTimeout
from gateway.core.types import Usage
from gateway.routing.backoff import backoff_s, cool_down_s
from gateway.routing.breaker import CircuitState
from gateway.routing.complexity import Choice
from gateway.routing.outcomes import DEADLINE_CODE, Outcome, classify
from gateway.routing.request import RouteRequest
from gateway.routing.strategies import Strategy

if TYPE_CHECKING:
    from gateway.routing.router import Router

HEADER_DEPLOYMENT = "x-gateway-deployment"
HEADER_ATTEMPTS = "x-gateway-attempts"
HEADER_FALLBACK = "x-gateway-fallback"


class UsageSource(Protocol):
    """Where a stream's usage is known once it has ended (its translator)."""

    @property
    def usage(self) -> Usage | None: ...


@dataclass(slots=True)
class Stage:
    group: ModelGroup
    strategy: Strategy
    fallback: bool  # not the group of the model the client asked for


class Plan:
    def __init__(
        self,
        router: Router,
        model: str,
        request: RouteRequest,
        stages: list[Stage],
        tag: str | None,
        deadline: float,
        complexity: Choice | None = None,
        top: ModelGroup | None = None,
    ) -> None:
        self._router = router
        self._model = model
        self._request = request
        self._stages = deque(stages)
        self._stage = self._stages.popleft()
        self._entered = {self._stage.group.name}
        self._tag = tag
        self.deadline = deadline
        self._round = 0
        self._tried: set[str] = set()  # in this round
        self._barred: set[str] = set()  # for the rest of the request
        self._failures = 0
        self._done = False
        self._error: GatewayError | None = None
        self._open_until = math.inf  # the earliest end of an open circuit seen on the way
        self._capped_until = math.inf  # the earliest free slot of a capped or cooling deployment
        self._deadline_passed = False
        self.current: Attempt | None = None
        # The deployment ids tried, in order (the last one served, if any did).
        self.attempted: list[str] = []
        # The `complexity` stage's choice (gateway/routing/complexity.py) when the model is tiered.
        self.complexity = complexity
        # And the top tier's group: what the request would have cost there is recorded beside it.
        self.top = top

    def remaining(self) -> float:
        return self.deadline - self._router.clock()

    async def next(self) -> Attempt | None:
        """The next attempt, after any backoff; None when the request has nowhere left to go."""
        router = self._router
        while not self._done and len(self.attempted) < router.options.max_attempts:
            now = router.clock()
            if now >= self.deadline:
                self._deadline_passed = True
                break
            ready, free_at = self._scan(now)
            if ready:
                return self._start(self._stage.strategy.pick(ready, self._request), now)
            if self._tried - self._barred and self._round < self._retries():
                self._round += 1
                self._tried.clear()
                delay = backoff_s(self._failures, router.options, router.rng)
                if now + delay >= self.deadline:
                    self._deadline_passed = True
                    break
                await router.sleep(delay)
            elif not self._stages and free_at < self.deadline:
                await router.sleep(free_at - now)
            elif not self._advance():
                break
        return None

    def error(self) -> GatewayError:
        """Why the request could not be served, once `next()` has returned None."""
        if self._error is not None:
            return self._error
        model = self._model
        now = self._router.clock()
        if self._capped_until < math.inf:
            return RateLimited(
                f"Every deployment of `{model}` is at its rate cap or cooling down; try again later.",
                retry_after=max(0.0, self._capped_until - now),
            )
        if self._open_until < math.inf:
            return ServiceUnavailable(
                f"Every deployment of `{model}` is failing and has been taken out of rotation for now.",
                retry_after=max(0.0, self._open_until - now),
            )
        if self._deadline_passed:
            return UpstreamTimeout(f"No deployment of `{model}` answered within the request's deadline.",
                                   code=DEADLINE_CODE)
        return ServiceUnavailable(f"No deployment of `{model}` can take this request now.")

    def close(self) -> None:
        """The request is over: an attempt still open ends with no verdict (it was cancelled)."""
        if self.current is not None:
            self.current.abandon()

    # the steps

    def _scan(self, now: float) -> tuple[list[Deployment], float]:
        """The deployments of this stage that may be tried now, and when the next blocked one frees."""
        health, request = self._router.health, self._request
        deployments = [d for d in self._stage.group.deployments if self._wanted(d)]
        fitting = [d for d in deployments if request.fits(d.context_window)]
        if not fitting and deployments:
            bigger = self._stage.group.context_window_fallback
            if bigger is not None and self._switch(bigger):
                return self._scan(now)
            fitting = deployments  # estimates are rough: let the upstream judge
        ready: list[Deployment] = []
        free_at = math.inf
        for deployment in fitting:
            key = deployment.id or ""
            if key in self._tried or key in self._barred:
                continue
            at = health.ready_at(deployment, request.expected_tokens, now)
            if at <= now:
                ready.append(deployment)
                continue
            free_at = min(free_at, at)
            if health.of(deployment).breaker.state(now) is CircuitState.CLOSED:
                self._capped_until = min(self._capped_until, at)
            else:
                self._open_until = min(self._open_until, at)
        return ready, free_at

    def _wanted(self, deployment: Deployment) -> bool:
        return self._tag is None or self._tag in deployment.tags or self._tag == deployment.region

    def _retries(self) -> int:
        retries = self._stage.group.retries
        return self._router.options.retries if retries is None else retries

    def _advance(self) -> bool:
        while self._stages:
            stage = self._stages.popleft()
            if stage.group.name not in self._entered:
                self._entered.add(stage.group.name)
                self._stage = stage
                self._round = 0
                self._tried.clear()
                return True
        return False

    def _switch(self, group_name: str) -> bool:
        """Leave the chain for a special-purpose group (larger context, content policy)."""
        if group_name in self._entered:
            return False
        self._stages = deque(self._router.stages(self._router.group(group_name), self._request,
                                                 fallback=True))
        return self._advance()

    def _start(self, deployment: Deployment, now: float) -> Attempt:
        router = self._router
        record = router.health.of(deployment)
        key = deployment.id or ""
        probe = record.breaker.acquire(now)
        record.caps.spend(self._request.expected_tokens, now)
        router.health.load.started(key)
        self._tried.add(key)
        self.attempted.append(key)
        self.current = Attempt(self, deployment, probe, now, len(self.attempted), self._stage.fallback)
        return self.current

    def _failed(self, attempt: Attempt, error: GatewayError, outcome: Outcome) -> None:
        self._error = error
        if outcome in (Outcome.BROKEN, Outcome.MISSING, Outcome.QUOTA):
            self._barred.add(attempt.deployment.id or "")
        if outcome.retryable:
            self._failures += 1
            return
        group = self._stage.group
        target = {
            Outcome.CONTEXT_LENGTH: group.context_window_fallback,
            Outcome.CONTENT_POLICY: group.content_policy_fallback,
        }.get(outcome)
        if target is None or not self._switch(target):
            self._done = True


class Attempt:
    """One call to one deployment; exactly one of succeeded, failed or abandon ends it."""

    def __init__(self, plan: Plan, deployment: Deployment, probe: bool, started: float, number: int,
                 fallback: bool) -> None:  # fmt: skip
        self.plan = plan
        self.deployment = deployment
        self.probe = probe
        self.started = started
        # 1 for the request's first attempt.
        self.number = number
        # A fallback group, not the group of the model asked for, serves it.
        self.fallback = fallback
        self.first_token_s: float | None = None
        self.ended = False

    def headers(self) -> dict[str, str]:
        """What the response says about the way it was served."""
        return {HEADER_DEPLOYMENT: self.deployment.id or "", HEADER_ATTEMPTS: str(self.number),
                HEADER_FALLBACK: "true" if self.fallback else "false"}  # fmt: skip

    def first_byte(self) -> None:
        """A stream has answered: from here on it belongs to the client, and there is no fallback."""
        self.first_token_s = self.plan._router.clock() - self.started
        self.plan._done = True

    def succeeded(self, usage: Usage | None) -> None:
        if not self._end():
            return
        router = self.plan._router
        now = router.clock()
        record = router.health.of(self.deployment)
        record.breaker.success(self.probe, now)
        record.latency.success(self.first_token_s, now - self.started)
        if usage is not None:
            used = usage.prompt_tokens + usage.completion_tokens
            record.caps.correct(used - self.plan._request.expected_tokens, now)
        self.plan._done = True

    def failed(self, error: GatewayError) -> None:
        if not self._end():
            return
        router = self.plan._router
        now = router.clock()
        record = router.health.of(self.deployment)
        outcome = classify(error)
        if outcome.counts_against_circuit:
            record.breaker.failure(self.probe, now)
        else:
            record.breaker.release(self.probe)
        if outcome.retryable:
            record.latency.failure()
        if outcome in (Outcome.RATE_LIMITED, Outcome.QUOTA) or (
            outcome is Outcome.TRANSIENT and error.retry_after is not None
        ):
            wait = router.options.max_retry_after_s if outcome is Outcome.QUOTA else error.retry_after
            record.caps.cool(now + cool_down_s(wait, router.options))
        self.plan._failed(self, error, outcome)

    def abandon(self) -> None:
        if self._end():
            self.plan._router.health.of(self.deployment).breaker.release(self.probe)

    def watch(self, chunks: AsyncIterator[bytes], usage: UsageSource) -> WatchedChunks:
        return WatchedChunks(chunks, self, usage)

    def _end(self) -> bool:
        if self.ended:
            return False
        self.ended = True
        self.plan._router.health.load.ended(self.deployment.id or "")
        if self.plan.current is self:
            self.plan.current = None
        return True


class WatchedChunks:
    """A stream's remaining chunks, telling the attempt how the stream ended once it has."""

    def __init__(self, chunks: AsyncIterator[bytes], attempt: Attempt, usage: UsageSource) -> None:
        self._chunks = chunks
        self._attempt = attempt
        self._usage = usage

    def __aiter__(self) -> WatchedChunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            self._attempt.succeeded(self._usage.usage)
            raise
        except GatewayError as error:
            self._attempt.failed(error)
            raise

    async def aclose(self) -> None:
        self._attempt.abandon()
        await self._chunks.aclose()  # type: ignore[attr-defined]
