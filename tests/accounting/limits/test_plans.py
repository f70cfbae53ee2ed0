"""The plan cache: what a key's requests to a model group are checked against, kept between requests.

A plan is cached on the values it is made of, so the limits a request meets are always its
principal's as they are now, and a budget's counter is always its current period's; on every
backend.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest

from gateway.accounting.limits import Limiter
from gateway.accounting.limits.checks import Kind
from gateway.accounting.limits.plans import Plans
from gateway.core.errors import QuotaExceeded, RateLimited
from gateway.core.types import BudgetPeriod, Limits
from tests.accounting.limits.conftest import BODY_MICRO, MODEL, FakeClock, admit_held, key, request, settle_held

MakeLimiter = Callable[..., Awaitable[Limiter]]


async def test_a_key_whose_limits_change_meets_its_new_limits_at_once(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    first = request(key(Limits(rpm=100)))
    await admit_held(limiter, first)
    assert first.response_headers["x-ratelimit-limit-requests"] == "100"
    # The admin API lowered the key's RPM: the key cache hands out a new Principal with it.
    lowered = request(key(Limits(rpm=1)))
    with pytest.raises(RateLimited):
        await admit_held(limiter, lowered)
    assert lowered.response_headers["x-ratelimit-limit-requests"] == "1"
    raised = request(key(Limits(rpm=1000)))
    await admit_held(limiter, raised)
    assert raised.response_headers["x-ratelimit-limit-requests"] == "1000"


async def test_a_budget_or_team_limit_that_changes_is_enforced_as_changed(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    roomy = Limits(budget_usd=Decimal(1))
    await admit_held(limiter, request(key(roomy)))
    with pytest.raises(QuotaExceeded):  # the budget was cut below what is already reserved
        await admit_held(limiter, request(key(Limits(budget_usd=Decimal("0.004")))))
    await admit_held(limiter, request(key(roomy)))
    # A team limit added to the team of a key already seen applies to the key's next request.
    await admit_held(limiter, request(key(roomy, Limits(tpm=300))))  # 204 tokens of 300
    capped = request(key(roomy, Limits(tpm=300)))
    with pytest.raises(RateLimited):
        await admit_held(limiter, capped)
    assert capped.response_headers["x-ratelimit-limit-tokens"] == "300"


async def test_a_budget_moves_to_the_next_periods_counter_at_its_end(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    clock.now = dt.datetime(2026, 3, 10, 23, 59, 59, tzinfo=dt.UTC).timestamp()
    limiter = await make_limiter()
    limits = Limits(budget_usd=Decimal("0.004"), budget_period=BudgetPeriod.DAILY)
    principal = key(limits)
    before = request(principal)
    await admit_held(limiter, before)
    assert before.reservation is not None
    [check] = [c for c in before.reservation.checks if c.kind is Kind.BUDGET]
    assert check.key.endswith(":usd:2026-03-10") and check.ttl_ms == 1000 + 3_600_000
    with pytest.raises(QuotaExceeded):  # this day's budget is reserved in full
        await admit_held(limiter, request(principal))

    clock.advance(1)  # midnight: the same principal, the same cached plan, a new day's counter
    after = request(principal)
    await admit_held(limiter, after)
    assert after.reservation is not None
    [check] = [c for c in after.reservation.checks if c.kind is Kind.BUDGET]
    assert check.key.endswith(":usd:2026-03-11") and check.ttl_ms == 86_400_000 + 3_600_000
    spend = await limiter.current("key", principal.key_id, limits)
    assert spend is not None and spend.spent_usd == Decimal(BODY_MICRO) / 1_000_000
    assert spend.period_start == dt.datetime(2026, 3, 11, tzinfo=dt.UTC)
    await settle_held(limiter, after)
    assert [b.period_start for b in after.budgets] == [dt.datetime(2026, 3, 11, tzinfo=dt.UTC)]


def test_plans_are_kept_per_value_and_the_cache_is_bounded() -> None:
    plans = Plans("gw", max_plans=2)
    limits = Limits(rpm=5, budget_usd=Decimal(1))
    plan = plans.get(key(limits), MODEL, None)
    assert plan is not None
    # An equal principal (another object, as after a key-cache refresh) shares it.
    assert plans.get(key(Limits(rpm=5, budget_usd=Decimal("1.00"))), MODEL, None) is plan
    # Anything that makes a plan differ makes another one.
    assert plans.get(key(limits, key_id="key-2"), MODEL, None) is not plan
    assert len(plans) == 2
    other_team = plans.get(key(limits, team="team-b", team_limits=Limits(rpm=1)), MODEL, None)
    assert other_team is not None and len(plans) == 1  # full: started again
    assert [s.check.limit for s in other_team.steps] == [5, 1_000_000, 1]
    assert plans.get(key(limits), "other-model", Limits(tpm=7)) is not plan
    assert plans.get(key(Limits()), MODEL, None) is None
