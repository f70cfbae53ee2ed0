"""Retries, backoff, fallbacks and the deadline, on a fake clock: what is tried, in which order,
and how long the router waits in between."""

from __future__ import annotations

import pytest

from gateway.core.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from gateway.core.request import ClientRequest
from gateway.routing.router import Router
from tests.routing.harness import FakeClock, Script, drive, request, router


def err500() -> UpstreamError:
    return UpstreamError("boom", status=502, type="server_error", code="upstream_error")


def chain(**extra: object) -> list[dict[str, object]]:
    return [
        {"name": "a", "deployments": [{"id": "a1"}, {"id": "a2"}], "fallbacks": ["b", "c"], **extra},
        {"name": "b", "deployments": [{"id": "b1"}]},
        {"name": "c", "deployments": [{"id": "c1"}]},
    ]


async def test_retries_the_group_with_backoff_then_falls_back_in_order() -> None:
    clock = FakeClock()
    r = router(chain(), clock, max_attempts=10, retries=1, backoff_base_s=0.5, backoff_max_s=4)
    script = Script({"a1": [err500()], "a2": [UpstreamUnreachable("down")], "b1": [UpstreamTimeout("slow")]})
    run = await drive(r, request("a"), script, clock)
    assert run.error is None
    # Round 1 over a, one retry round after a backoff, then each fallback group in its order.
    assert run.tried == ["a1", "a2", "a1", "a2", "b1", "b1", "c1"]
    assert run.last is not None and run.last.fallback is True and run.last.number == 7
    assert run.last.headers() == {"x-gateway-deployment": "c1", "x-gateway-attempts": "7", "x-gateway-fallback": "true"}
    # Two backoffs: before a's retry round (2nd failure: 0.5..1.0 s, equal jitter) and before
    # b's (5th failure: capped at 4, so 2..4 s). Switching group costs no wait.
    assert len(clock.sleeps) == 2
    assert 0.5 <= clock.sleeps[0] <= 1.0
    assert 2.0 <= clock.sleeps[1] <= 4.0


async def test_a_client_error_is_not_retried() -> None:
    clock = FakeClock()
    r = router(chain(), clock)
    run = await drive(r, request("a"), Script({"a1": [InvalidRequest("bad field", param="temperature")]}), clock)
    assert run.tried == ["a1"]
    assert isinstance(run.error, InvalidRequest)
    assert clock.sleeps == []


async def test_the_attempt_budget_stops_the_plan() -> None:
    clock = FakeClock()
    r = router(chain(), clock, max_attempts=3, retries=5)
    run = await drive(r, request("a"), Script({}, default=err500()), clock)
    assert run.tried == ["a1", "a2", "a1"]
    assert run.error is not None and run.error.status == 502


async def test_the_deadline_stops_retries_and_backoffs() -> None:
    clock = FakeClock()
    r = router(chain(), clock, deadline_s=5, retries=3, max_attempts=20, backoff_base_s=1, backoff_max_s=1)
    # Each attempt takes 2.3 s: a1, a2 (t=4.6); a backoff of at least 0.5 s would end past t=5.
    run = await drive(r, request("a"), Script({}, default=err500(), took={"a1": 2.3, "a2": 2.3}), clock)
    assert run.tried == ["a1", "a2"]
    assert run.error is not None and run.error.status == 502
    assert clock.now - 1000 < 5


async def test_no_attempt_starts_after_the_deadline() -> None:
    clock = FakeClock()
    r = router(chain(), clock, deadline_s=3, retries=0)
    run = await drive(r, request("a"), Script({}, default=UpstreamTimeout("slow"), took={"a1": 3.5}), clock)
    assert run.tried == ["a1"]
    assert isinstance(run.error, UpstreamTimeout)


async def test_retry_after_is_honoured_when_nothing_else_can_serve() -> None:
    clock = FakeClock()
    models = [{"name": "solo", "deployments": [{"id": "s1"}]}]
    r = router(models, clock, retries=1, backoff_base_s=0.1, backoff_max_s=0.1)
    limited = RateLimited("slow down", retry_after=3.0)
    run = await drive(r, request("solo"), Script({"s1": [limited, None]}), clock)
    assert run.tried == ["s1", "s1"]
    assert run.error is None
    # The backoff (0.05..0.1 s), then the rest of the 3 s the upstream asked for.
    assert 2.9 <= sum(clock.sleeps) <= 3.01


async def test_retry_after_beyond_the_deadline_is_not_waited_for() -> None:
    clock = FakeClock()
    models = [{"name": "solo", "deployments": [{"id": "s1"}]}]
    r = router(models, clock, deadline_s=2, retries=1)
    run = await drive(r, request("solo"), Script({"s1": [RateLimited("slow down", retry_after=30.0)]}), clock)
    assert run.tried == ["s1"]
    assert isinstance(run.error, RateLimited) and run.error.retry_after == 30.0


async def test_a_cooling_deployment_is_skipped_while_another_can_serve() -> None:
    clock = FakeClock()
    r = router(chain(), clock, retries=0)
    first = await drive(r, request("a"), Script({"a1": [RateLimited("slow down", retry_after=20.0)]}), clock)
    assert first.tried == ["a1", "a2"]
    later = await drive(r, request("a"), Script({}), clock)
    assert later.tried == ["a2"]  # a1 is cooling down for 20 s
    clock.now += 21
    again = await drive(r, request("a"), Script({}), clock)
    assert again.tried == ["a1"]


async def test_context_length_goes_to_the_larger_group() -> None:
    clock = FakeClock()
    models = [
        {"name": "small", "deployments": [{"id": "s1"}, {"id": "s2"}], "context_window_fallback": "large",
         "fallbacks": ["other"]},
        {"name": "large", "deployments": [{"id": "l1"}]},
        {"name": "other", "deployments": [{"id": "o1"}]},
    ]
    r = router(models, clock)
    run = await drive(r, request("small"), Script({"s1": [ContextLengthExceeded("too long")]}), clock)
    assert run.tried == ["s1", "l1"]  # neither s2 (same window) nor the ordinary fallback
    assert run.error is None and run.last is not None and run.last.fallback is True


async def test_a_prompt_known_to_be_too_long_goes_straight_to_the_larger_group() -> None:
    clock = FakeClock()
    models = [
        {"name": "small", "deployments": [{"id": "s1", "context_window": 100}], "context_window_fallback": "large"},
        {"name": "large", "deployments": [{"id": "l1", "context_window": 100_000}]},
    ]
    r = router(models, clock)
    body = {"model": "small", "messages": [{"role": "user", "content": "word " * 400}]}
    run = await drive(r, request("small", body=body), Script({}), clock)
    assert run.tried == ["l1"]


async def test_content_policy_refusal_goes_to_the_configured_group() -> None:
    clock = FakeClock()
    models = [
        {"name": "strict", "deployments": [{"id": "t1"}, {"id": "t2"}], "content_policy_fallback": "lenient"},
        {"name": "lenient", "deployments": [{"id": "n1"}]},
    ]
    r = router(models, clock)
    refusal = InvalidRequest("rejected by the safety system", code="content_policy_violation")
    run = await drive(r, request("strict"), Script({"t1": [refusal]}), clock)
    assert run.tried == ["t1", "n1"]
    # Without a configured group, the refusal is the client's answer.
    clock2 = FakeClock()
    plain = router([{"name": "strict", "deployments": [{"id": "t1"}, {"id": "t2"}]}], clock2)
    run = await drive(plain, request("strict"), Script({"t1": [refusal]}), clock2)
    assert run.tried == ["t1"] and run.error is refusal


async def test_the_default_chain_applies_to_groups_without_their_own() -> None:
    clock = FakeClock()
    models = [
        {"name": "a", "deployments": [{"id": "a1"}]},
        {"name": "own", "deployments": [{"id": "w1"}], "fallbacks": []},
        {"name": "spare", "deployments": [{"id": "p1"}]},
    ]
    r = router(models, clock, retries=0, default_fallbacks=["spare"])
    assert (await drive(r, request("a"), Script({"a1": [err500()]}), clock)).tried == ["a1", "p1"]
    assert (await drive(r, request("own"), Script({"w1": [err500()]}), clock)).tried == ["w1"]


async def test_credentials_rejected_bars_the_deployment_for_the_request() -> None:
    clock = FakeClock()
    r = router(chain(), clock, retries=2, max_attempts=10)
    auth = UpstreamError("bad key", status=502, type="server_error", code="upstream_auth_failed")
    run = await drive(r, request("a"), Script({"a1": [auth], "a2": [err500(), None]}), clock)
    assert run.tried == ["a1", "a2", "a2"]


async def test_nothing_available_says_why() -> None:
    clock = FakeClock()
    models = [{"name": "capped", "deployments": [{"id": "k1", "rpm": 1}]}]
    r = router(models, clock, retries=0, deadline_s=5)
    assert (await drive(r, request("capped"), Script({}), clock)).error is None
    run = await drive(r, request("capped"), Script({}), clock)
    assert run.tried == []
    assert isinstance(run.error, RateLimited) and run.error.retry_after is not None


@pytest.mark.parametrize("stream", [False, True])
async def test_attempts_release_in_flight_counts(stream: bool) -> None:
    clock = FakeClock()
    r = router(chain(), clock)
    await drive(r, request("a", stream=stream), Script({"a1": [err500()]}), clock)
    assert r.health.load.inflight("a1") == 0 and r.health.load.inflight("a2") == 0


async def test_open_circuits_everywhere_is_a_503_with_retry_after() -> None:
    clock = FakeClock()
    models = [{"name": "solo", "deployments": [{"id": "s1"}]}]
    r = router(models, clock, retries=0, deadline_s=5, breaker={"failures": 1, "min_requests": 1, "cooldown_s": 60})
    await drive(r, request("solo"), Script({"s1": [err500()]}), clock)
    run = await drive(r, request("solo"), Script({}), clock)
    assert run.tried == []
    assert isinstance(run.error, ServiceUnavailable) and run.error.retry_after is not None


async def test_a_special_fallback_group_is_reached_even_when_it_is_also_in_the_chain() -> None:
    clock = FakeClock()
    models = [
        {"name": "a", "deployments": [{"id": "a1"}], "fallbacks": ["b", "lenient"],
         "content_policy_fallback": "lenient"},
        {"name": "b", "deployments": [{"id": "b1"}]},
        {"name": "lenient", "deployments": [{"id": "n1"}]},
    ]
    r = router(models, clock)
    refusal = InvalidRequest("rejected by the safety system", code="content_filter")
    run = await drive(r, request("a"), Script({"a1": [refusal]}), clock)
    assert run.tried == ["a1", "n1"]


async def test_a_deployment_barred_for_the_request_costs_no_backoff() -> None:
    clock = FakeClock()
    r = router(chain(), clock, retries=2)
    missing = UpstreamError("no such model", status=502, type="server_error", code="upstream_not_found")
    run = await drive(r, request("a"), Script({"a1": [missing], "a2": [missing]}), clock)
    assert run.tried == ["a1", "a2", "b1"]
    assert clock.sleeps == []


def tier_of(r: Router, asked: ClientRequest) -> str | None:
    plan = r.plan(asked)
    plan.close()
    return plan.complexity.tier.name if plan.complexity is not None else None


async def test_a_tiered_request_falls_back_through_its_tiers_own_chain_then_up_the_tiers() -> None:
    clock = FakeClock()
    models = [
        {"name": "small", "deployments": [{"id": "s1"}], "fallbacks": ["spare"]},
        {"name": "spare", "deployments": [{"id": "p1"}]},
        {"name": "medium", "deployments": [{"id": "m1"}]},
        {"name": "large", "deployments": [{"id": "l1"}]},
        {"name": "auto", "complexity": {"tiers": [{"name": "s", "model": "small", "max_score": 0.1},
                                                  {"name": "m", "model": "medium", "max_score": 0.3},
                                                  {"name": "l", "model": "large"}]}},
    ]
    r = router(models, clock, retries=0)
    down = Script({"s1": [err500()], "p1": [err500()], "m1": [err500()]})
    assert tier_of(r, request("auto")) == "s"
    run = await drive(r, request("auto"), down, clock)
    assert run.error is None and run.tried == ["s1", "p1", "m1", "l1"]
    assert run.last is not None and run.last.fallback is True
    # A request scored for the top tier has nowhere higher to go.
    hard = {"model": "auto", "messages": [{"role": "user", "content": "Prove, step by step, why the integral "
                                           "converges; analyse the trade-offs of each proof in depth."}]}
    assert tier_of(r, request("auto", body=hard)) == "l"
    run = await drive(r, request("auto", body=hard), Script({"l1": [err500()]}), clock)
    assert run.tried == ["l1"] and run.error is not None
