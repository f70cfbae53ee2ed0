"""Per-deployment rpm/tpm caps and the sliding window under them."""

from __future__ import annotations

import math

from gateway.config.file import Deployment
from gateway.routing.caps import DeploymentCaps
from gateway.routing.window import SlidingWindow


def deployment(**fields: object) -> Deployment:
    return Deployment(base_url="http://127.0.0.1:9/v1", **fields)  # type: ignore[arg-type]


def test_window_forgets_what_is_older_than_the_window() -> None:
    w = SlidingWindow(60, buckets=60)
    w.add(5, 0.5)
    w.add(2, 30.2)
    assert w.total(59.0) == 7
    assert w.total(60.5) == 2
    assert w.total(200.0) == 0


def test_window_says_when_an_amount_will_have_left() -> None:
    w = SlidingWindow(60, buckets=60)
    w.add(3, 10.2)
    w.add(3, 20.7)
    assert w.free_at(2, 30.0) == 70.0  # the 10..11 s bucket leaves when the 70 s one begins
    assert w.free_at(5, 30.0) == 80.0
    assert w.free_at(7, 30.0) == math.inf
    assert w.free_at(0, 30.0) == 30.0


def test_rpm_cap_holds_requests_until_the_minute_has_room() -> None:
    caps = DeploymentCaps(deployment(rpm=2), workers=1)
    assert caps.ready_at(10, 0.0) == 0.0
    caps.spend(10, 0.0)
    caps.spend(10, 1.0)
    assert caps.ready_at(10, 2.0) > 59.0


def test_tpm_cap_counts_tokens_and_takes_the_real_usage() -> None:
    caps = DeploymentCaps(deployment(tpm=1000), workers=1)
    caps.spend(800, 0.0)
    assert caps.ready_at(300, 1.0) > 1.0
    caps.correct(-600, 1.0)  # the answer used 200 tokens, not 800
    assert caps.ready_at(300, 1.0) == 1.0


def test_a_request_larger_than_the_cap_still_goes_when_nothing_else_is_counted() -> None:
    caps = DeploymentCaps(deployment(tpm=100), workers=1)
    assert caps.ready_at(5000, 0.0) == 0.0


def test_each_worker_takes_its_share_of_the_cap() -> None:
    caps = DeploymentCaps(deployment(rpm=4), workers=2)
    caps.spend(1, 0.0)
    caps.spend(1, 0.0)
    assert caps.ready_at(1, 0.5) > 0.5


def test_cool_down_after_429() -> None:
    caps = DeploymentCaps(deployment(), workers=1)
    caps.cool(12.0)
    caps.cool(5.0)  # an earlier end does not shorten it
    assert caps.ready_at(1, 1.0) == 12.0
