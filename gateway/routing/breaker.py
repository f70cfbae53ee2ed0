"""A per-deployment circuit breaker: closed -> open -> half-open -> closed.

Closed, it counts attempts in a sliding window and opens once there were enough of them and the
failures reach both a count and a share (a busy deployment with a few failures stays closed). Open, it
sends nothing for a cooldown. Then it is half-open: one probe at a time goes through, and
`probes` successes in a row close it; a failed probe opens it again for another cooldown.

Whoever built the breaker may listen (`on_change`): it hears each state entered, once. Half-open
is entered by the clock, so it is heard when the state is next looked at: by the router's next
look, or by `Router.observe_circuits`, which the app calls periodically so an idle circuit's
reported state follows its cooldown too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum

from gateway.config.routing import BreakerOptions
from gateway.routing.window import SlidingWindow


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


# What hears a breaker's state changes: (deployment id, state entered). Routing must not import
# metrics, so the app hands one in (gateway/observability/metrics.py's `circuit_state`).
CircuitListener = Callable[[str, CircuitState], None]


class CircuitBreaker:
    def __init__(self, options: BreakerOptions, on_change: Callable[[CircuitState], None] | None = None) -> None:
        self._options = options
        self._on_change = on_change
        self._reported = CircuitState.CLOSED
        self._failures = SlidingWindow(options.window_s)
        self._attempts = SlidingWindow(options.window_s)
        self._open_until = -math.inf
        self._opened = False
        self._probe_in_flight = False
        self._probe_successes = 0

    def state(self, now: float) -> CircuitState:
        if not self._opened:
            state = CircuitState.CLOSED
        else:
            state = CircuitState.OPEN if now < self._open_until else CircuitState.HALF_OPEN
        if state is not self._reported:
            self._reported = state
            if self._on_change is not None:
                self._on_change(state)
        return state

    def ready_at(self, now: float) -> float:
        """When an attempt may go there: now, the end of the cooldown, or never (a probe is out)."""
        state = self.state(now)
        if state is CircuitState.CLOSED:
            return now
        if state is CircuitState.OPEN:
            return self._open_until
        return math.inf if self._probe_in_flight else now

    def acquire(self, now: float) -> bool:
        """Take the attempt slot; True if the attempt is a half-open probe."""
        state = self.state(now)
        if state is CircuitState.CLOSED:
            return False
        if state is CircuitState.OPEN or self._probe_in_flight:
            raise RuntimeError("an open circuit was asked for an attempt")
        self._probe_in_flight = True
        return True

    def success(self, probe: bool, now: float) -> None:
        if probe:
            self._probe_in_flight = False
            self._probe_successes += 1
            if self._probe_successes >= self._options.probes:
                self._close()
        elif not self._opened:
            self._attempts.add(1, now)

    def failure(self, probe: bool, now: float) -> None:
        if probe:
            self._probe_in_flight = False
            self._open(now)
            return
        if self._opened:
            return  # an attempt from before the circuit opened, ending late
        self._attempts.add(1, now)
        self._failures.add(1, now)
        failures = self._failures.total(now)
        attempts = self._attempts.total(now)
        options = self._options
        if (
            attempts >= options.min_requests
            and failures >= options.failures
            and failures >= options.min_failure_ratio * attempts
        ):
            self._open(now)

    def release(self, probe: bool) -> None:
        """The attempt ended with no verdict on the deployment (cancelled, or the client's fault)."""
        if probe:
            self._probe_in_flight = False

    def _open(self, now: float) -> None:
        self._opened = True
        self._open_until = now + self._options.cooldown_s
        self._probe_successes = 0
        self.state(now)  # heard at once

    def _close(self) -> None:
        self._opened = False
        self._probe_successes = 0
        self._failures = SlidingWindow(self._options.window_s)
        self._attempts = SlidingWindow(self._options.window_s)
        self.state(0.0)  # closed whatever the time: heard at once
