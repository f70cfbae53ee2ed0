"""Per-deployment request and token caps, and the cool-down after an upstream 429.

The caps exist so that the gateway spreads load over a group before a provider starts
answering 429. They are counted in this process: with N workers each worker takes 1/N of the
configured cap (the kernel spreads connections over workers about evenly), so one gateway
replica as a whole stays near the cap. Several gateway replicas each apply the whole cap; see
docs/routing.md (Health) for why that is acceptable.
"""

from __future__ import annotations

import math

from gateway.config.file import Deployment
from gateway.routing.window import SlidingWindow

MINUTE = 60.0


class DeploymentCaps:
    __slots__ = ("_requests", "_rpm", "_tokens", "_tpm", "cool_until")

    def __init__(self, deployment: Deployment, workers: int) -> None:
        self._rpm = deployment.rpm / workers if deployment.rpm else None
        self._tpm = deployment.tpm / workers if deployment.tpm else None
        self._requests = SlidingWindow(MINUTE) if self._rpm else None
        self._tokens = SlidingWindow(MINUTE) if self._tpm else None
        self.cool_until = -math.inf

    def ready_at(self, tokens: int, now: float) -> float:
        """When one more request of `tokens` fits under both caps (and past any cool-down)."""
        ready = max(now, self.cool_until)
        if self._requests is not None and self._rpm is not None:
            ready = max(ready, _fits_at(self._requests, 1, self._rpm, now))
        if self._tokens is not None and self._tpm is not None:
            ready = max(ready, _fits_at(self._tokens, tokens, self._tpm, now))
        return ready

    def spend(self, tokens: int, now: float) -> None:
        if self._requests is not None:
            self._requests.add(1, now)
        if self._tokens is not None:
            self._tokens.add(tokens, now)

    def correct(self, delta_tokens: int, now: float) -> None:
        """Replace an estimate by the real count once the upstream has reported its usage."""
        if self._tokens is not None and delta_tokens:
            self._tokens.add(delta_tokens, now)

    def cool(self, until: float) -> None:
        self.cool_until = max(self.cool_until, until)


def _fits_at(window: SlidingWindow, amount: float, cap: float, now: float) -> float:
    used = window.total(now)
    if used + amount <= cap or used == 0:
        # An empty window takes even a request larger than the cap: refusing it forever helps no one.
        return now
    return window.free_at(used + amount - cap, now)
