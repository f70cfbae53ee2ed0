"""The circuit breaker's states, on a hand-moved clock."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gateway.config.routing import BreakerOptions, RoutingOptions
from gateway.routing.breaker import CircuitBreaker, CircuitState
from gateway.routing.router import Router
from tests.routing.harness import FakeClock, groups


def breaker(**options: Any) -> CircuitBreaker:
    defaults = {"failures": 3, "min_requests": 3, "window_s": 10, "cooldown_s": 30}
    return CircuitBreaker(BreakerOptions(**{**defaults, **options}))


def test_opens_after_failures_in_the_window_and_sends_nothing_while_open() -> None:
    b = breaker()
    for t in (0.0, 1.0):
        b.failure(False, t)
    assert b.state(1.0) is CircuitState.CLOSED
    b.failure(False, 2.0)
    assert b.state(2.0) is CircuitState.OPEN
    assert b.ready_at(2.0) == 32.0
    with pytest.raises(RuntimeError):
        b.acquire(10.0)


def test_failures_that_left_the_window_do_not_count() -> None:
    b = breaker()
    b.failure(False, 0.0)
    b.failure(False, 1.0)
    b.failure(False, 20.0)  # the first two are older than the 10 s window
    assert b.state(20.0) is CircuitState.CLOSED


def test_a_few_failures_among_many_successes_keep_it_closed() -> None:
    b = breaker(min_failure_ratio=0.5)
    for i in range(20):
        b.success(False, i * 0.1)
    for i in range(4):
        b.failure(False, 2 + i * 0.1)
    assert b.state(3.0) is CircuitState.CLOSED


def test_half_open_lets_one_probe_through_at_a_time_and_closes_after_enough() -> None:
    b = breaker(probes=2)
    for t in (0.0, 0.1, 0.2):
        b.failure(False, t)
    assert b.state(30.2) is CircuitState.HALF_OPEN
    assert b.ready_at(30.2) == 30.2
    assert b.acquire(30.2) is True
    assert b.ready_at(30.3) == math.inf  # the probe is out: nobody else goes
    b.success(True, 31.0)
    assert b.state(31.0) is CircuitState.HALF_OPEN
    assert b.acquire(31.0) is True
    b.success(True, 32.0)
    assert b.state(32.0) is CircuitState.CLOSED
    assert b.acquire(32.0) is False


def test_a_failed_probe_opens_it_for_another_cooldown() -> None:
    b = breaker()
    for t in (0.0, 0.1, 0.2):
        b.failure(False, t)
    assert b.acquire(31.0) is True
    b.failure(True, 31.5)
    assert b.state(31.5) is CircuitState.OPEN
    assert b.ready_at(31.5) == 61.5


def test_a_probe_with_no_verdict_frees_the_slot() -> None:
    b = breaker()
    for t in (0.0, 0.1, 0.2):
        b.failure(False, t)
    assert b.acquire(31.0) is True
    b.release(True)
    assert b.ready_at(31.0) == 31.0


def test_it_waits_for_enough_attempts_before_judging() -> None:
    b = breaker(min_requests=10, failures=3, min_failure_ratio=0.5)
    for t in range(4):
        b.failure(False, float(t))  # four failures in a row, but only four attempts
    assert b.state(4.0) is CircuitState.CLOSED
    for t in range(4, 10):
        b.failure(False, t * 0.5)
    assert b.state(5.0) is CircuitState.OPEN


def test_whoever_listens_hears_each_state_entered_once() -> None:
    heard: list[CircuitState] = []
    b = CircuitBreaker(BreakerOptions(failures=3, min_requests=3, window_s=10, cooldown_s=30), heard.append)
    for t in (0.0, 0.1, 0.2):
        b.failure(False, t)
    assert heard == [CircuitState.OPEN]  # at once, not when someone next looks
    b.state(10.0)
    assert heard == [CircuitState.OPEN]
    assert b.acquire(31.0) is True  # the cooldown ran out: the probe's look finds it half-open
    b.failure(True, 31.5)
    assert b.state(61.5) is CircuitState.HALF_OPEN
    assert b.acquire(61.5) is True
    b.success(True, 62.0)
    assert heard == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.OPEN, CircuitState.HALF_OPEN,
                     CircuitState.CLOSED]  # fmt: skip


def test_the_router_reports_an_idle_circuit_half_open_when_asked_to_look() -> None:
    clock = FakeClock()
    heard: list[tuple[str, str]] = []
    (group,) = groups([{"name": "g", "deployments": [{"provider": "openai", "model": "m", "id": "d1"}]}])
    options = RoutingOptions(breaker=BreakerOptions(failures=1, min_requests=1, cooldown_s=5))
    router = Router([group], options, clock=clock, on_circuit=lambda d, state: heard.append((d, str(state))))
    router.health.of(group.deployments[0]).breaker.failure(False, clock())
    assert heard == [("d1", "open")]
    router.observe_circuits()
    assert heard == [("d1", "open")]
    clock.now += 5
    router.observe_circuits()  # no request came: the look alone moves the reported state
    assert heard == [("d1", "open"), ("d1", "half-open")]
