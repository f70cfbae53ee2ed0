"""How a group picks one deployment among those that may take the request now.

Every strategy gets the same signals (health, prices, a random source) and answers one
question, `pick`. The candidates arrive in the group's configured order, already filtered to
deployments that are healthy, under their caps and large enough for the request.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from gateway.accounting.pricing import PriceBook, charge
from gateway.config.file import Deployment
from gateway.config.routing import RoutingOptions
from gateway.routing.hashring import HashRing
from gateway.routing.health import Health
from gateway.routing.request import RouteRequest

MAX_RINGS = 256


@dataclass(slots=True, frozen=True)
class Signals:
    health: Health
    prices: PriceBook
    rng: random.Random
    options: RoutingOptions


class Strategy(Protocol):
    def __init__(self, signals: Signals) -> None: ...

    def pick(self, candidates: Sequence[Deployment], request: RouteRequest) -> Deployment: ...


class Priority:
    """The first healthy one, in configured order."""

    def __init__(self, signals: Signals) -> None:
        self.signals = signals

    def pick(self, candidates: Sequence[Deployment], request: RouteRequest) -> Deployment:
        return candidates[0]


class Weighted:
    """At random, in proportion to the configured weights."""

    def __init__(self, signals: Signals) -> None:
        self.signals = signals

    def pick(self, candidates: Sequence[Deployment], request: RouteRequest) -> Deployment:
        return self.signals.rng.choices(candidates, weights=[d.weight for d in candidates])[0]


class LeastBusy:
    """The fewest requests in flight (for vLLM: its own queue and KV use); ties at random."""

    def __init__(self, signals: Signals) -> None:
        self.signals = signals

    def pick(self, candidates: Sequence[Deployment], request: RouteRequest) -> Deployment:
        load = self.signals.health.load.load
        loads = [load(d.id or "") for d in candidates]
        least = min(loads)
        idle = [d for d, value in zip(candidates, loads, strict=True) if value == least]
        return idle[0] if len(idle) == 1 else self.signals.rng.choice(idle)


class Latency:
    """The lowest recent latency (first token for streams, total otherwise) per good answer.

    A deployment never measured is tried first; and now and then another than the fastest is,
    so one that has recovered (or slowed down) is noticed.
    """

    def __init__(self, signals: Signals) -> None:
        self.signals = signals

    def pick(self, candidates: Sequence[Deployment], request: RouteRequest) -> Deployment:
        health, rng = self.signals.health, self.signals.rng
        scored: list[tuple[float, int, Deployment]] = []
        for order, deployment in enumerate(candidates):
            score = health.of(deployment).latency.score(request.stream)
            if score is None:
                return deployment
            scored.append((score, order, deployment))
        scored.sort(key=lambda entry: entry[:2])
        if len(scored) > 1 and rng.random() < self.signals.options.latency_exploration:
            return rng.choice(scored[1:])[2]
        return scored[0][2]


class Cost:
    """The cheapest for this request's expected tokens; deployments with no known price last."""

    def __init__(self, signals: Signals) -> None:
        self.signals = signals

    def pick(self, candidates: Sequence[Deployment], request: RouteRequest) -> Deployment:
        prices = self.signals.prices
        best: tuple[Decimal, int] | None = None
        chosen = candidates[0]
        for order, deployment in enumerate(candidates):
            price = prices.price(deployment, request.model)
            if price is None:
                continue
            cost = charge(price, request.prompt_tokens, request.output_tokens)
            if best is None or (cost, order) < best:
                best, chosen = (cost, order), deployment
        return chosen


class PrefixAffinity:
    """Requests sharing a prompt prefix go to the same replica, so its prefix cache is reused,
    unless that replica is over `prefix_load_factor` times the mean load (bounded-load consistent
    hashing); requests without a shared prefix go to the least busy replica."""

    def __init__(self, signals: Signals) -> None:
        self.signals = signals
        self._least_busy = LeastBusy(signals)
        self._rings: dict[tuple[str, ...], HashRing[str]] = {}

    def pick(self, candidates: Sequence[Deployment], request: RouteRequest) -> Deployment:
        key = request.prefix_hash()
        if key is None or len(candidates) == 1:
            return self._least_busy.pick(candidates, request)
        by_id = {d.id or "": d for d in candidates}
        chosen = self._ring(tuple(by_id)).pick(
            key, self.signals.health.load.load, set(by_id), self.signals.options.prefix_load_factor
        )
        return by_id[chosen] if chosen is not None else candidates[0]

    def _ring(self, ids: tuple[str, ...]) -> HashRing[str]:
        # A ring over exactly the candidates: a deployment that drops out (open circuit) only
        # moves the prefixes it owned, which is what consistent hashing is for.
        ring = self._rings.get(ids)
        if ring is None:
            if len(self._rings) >= MAX_RINGS:
                self._rings.clear()
            ring = self._rings[ids] = HashRing(ids, str)
        return ring


STRATEGIES: dict[str, type[Strategy]] = {
    "priority": Priority,
    "weighted": Weighted,
    "least-busy": LeastBusy,
    "latency": Latency,
    "cost": Cost,
    "prefix-affinity": PrefixAffinity,
}
