"""One contract for every limiter backend: in-process, Redis, and Redis Cluster.

The clock is injected and frozen unless a test moves it, so every figure here is exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest

from gateway.accounting.limits import Limiter
from gateway.core.errors import QuotaExceeded, RateLimited
from gateway.core.types import BudgetPeriod, Limits
from tests.accounting.limits.conftest import (
    BODY,
    BODY_MICRO,
    BODY_TOKENS,
    MODEL,
    FakeClock,
    admit_held,
    key,
    request,
    served,
    settle_held,
)

MakeLimiter = Callable[..., Awaitable[Limiter]]


async def test_rpm_admits_the_limit_then_refuses_until_the_bucket_refills(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = await make_limiter()
    principal = key(Limits(rpm=3))
    first = request(principal)
    await admit_held(limiter, first)
    assert first.response_headers == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "20s",
    }
    for _ in range(2):
        await admit_held(limiter, request(principal))
    refused = request(principal)
    with pytest.raises(RateLimited) as info:
        await admit_held(limiter, refused)
    error = info.value
    assert (error.status, error.type, error.code) == (429, "requests", "rate_limit_exceeded")
    assert error.retry_after == 20.0
    assert "requests per min" in error.message and "Limit 3" in error.message
    assert refused.response_headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.response_headers["x-ratelimit-reset-requests"] == "1m0s"
    assert refused.reservation is None

    clock.advance(19.9)
    with pytest.raises(RateLimited):
        await admit_held(limiter, request(principal))
    clock.advance(0.1)
    again = request(principal)
    await admit_held(limiter, again)
    assert again.response_headers["x-ratelimit-remaining-requests"] == "0"


async def test_tpm_reserves_the_estimate_and_settle_refunds_the_difference(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    principal = key(Limits(tpm=1000))
    held = []
    for n in range(4):
        ctx = request(principal)
        await admit_held(limiter, ctx)
        assert ctx.response_headers["x-ratelimit-remaining-tokens"] == str(1000 - (n + 1) * BODY_TOKENS)
        held.append(ctx)
    with pytest.raises(RateLimited) as info:
        await admit_held(limiter, request(principal))
    assert (info.value.type, info.value.code) == ("tokens", "rate_limit_exceeded")
    assert f"Requested {BODY_TOKENS}" in info.value.message
    assert info.value.retry_after == pytest.approx((5 * BODY_TOKENS - 1000) * 0.06)

    # 154 of the first reservation's 204 tokens were not used: they come back.
    await settle_held(limiter, served(held[0], 30, 20))
    ctx = request(principal)
    await admit_held(limiter, ctx)
    assert ctx.response_headers["x-ratelimit-remaining-tokens"] == str(1000 - 3 * BODY_TOKENS - 50 - BODY_TOKENS)


async def test_a_request_larger_than_the_tpm_limit_waits_for_a_full_bucket(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = await make_limiter()
    principal = key(Limits(tpm=100))
    big = request(principal)
    await admit_held(limiter, big)  # 204 estimated tokens against 100 a minute: it passes on a full bucket
    await settle_held(limiter, served(big, 200, 100))  # and is charged for its 300 tokens: 3 minutes' worth
    with pytest.raises(RateLimited) as info:
        await admit_held(limiter, request(principal, {**BODY, "messages": [{"role": "user", "content": "hi"}]}))
    assert info.value.type == "tokens"
    clock.advance(180)
    await admit_held(limiter, request(principal))


async def test_parallel_slots_are_held_until_settle(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    principal = key(Limits(max_parallel=2))
    first, second = request(principal), request(principal)
    await admit_held(limiter, first)
    await admit_held(limiter, second)
    with pytest.raises(RateLimited) as info:
        await admit_held(limiter, request(principal))
    assert (info.value.type, info.value.code) == ("requests", "rate_limit_exceeded")
    assert "parallel" in info.value.message
    await settle_held(limiter, served(first, 1, 1))
    await admit_held(limiter, request(principal))


async def test_a_slot_whose_holder_died_frees_itself_after_the_lease(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    dead = await make_limiter(lease_s=30)
    principal = key(Limits(max_parallel=1))
    await admit_held(dead, request(principal))  # never settled: its process "crashed"
    alive = await make_limiter(lease_s=30)
    with pytest.raises(RateLimited):
        await admit_held(alive, request(principal))
    clock.advance(30.001)
    await admit_held(alive, request(principal))


async def test_settle_reports_each_budgets_state_for_metrics_and_alerts(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = await make_limiter()
    principal = key(Limits(budget_usd=Decimal("0.01"), budget_period=BudgetPeriod.DAILY),
                    Limits(budget_usd=Decimal("5"), rpm=100), team="team-b")  # fmt: skip
    first = request(principal)
    await admit_held(limiter, first)
    await settle_held(limiter, served(first, 50, 20))  # 1100 micro-USD
    second = request(principal)
    await admit_held(limiter, second)
    await settle_held(limiter, served(second, 50, 20))
    by_scope = {b.scope: b for b in second.budgets}
    assert set(by_scope) == {"key", "team"}
    assert (by_scope["key"].id, by_scope["key"].spent_usd, by_scope["key"].budget_usd) == (
        "key-1", Decimal("0.0022"), Decimal("0.01"))
    assert by_scope["key"].period_start is not None and by_scope["key"].period_end is not None
    assert by_scope["key"].period_end - by_scope["key"].period_start == dt.timedelta(days=1)
    assert (by_scope["team"].id, by_scope["team"].spent_usd) == ("team-b", Decimal("0.0022"))
    assert by_scope["team"].period_end is None  # a budget with no period never resets
    # A key with no budget reports none.
    plain = request(key(Limits(rpm=10), key_id="key-2"))
    await admit_held(limiter, plain)
    await settle_held(limiter, served(plain, 1, 1))
    assert plain.budgets == []


async def test_budget_reserves_the_estimate_and_settles_the_real_cost(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    # 10_000 micro-USD; each request reserves 4040.
    principal = key(Limits(budget_usd=Decimal("0.01")))

    async def spent() -> Decimal | None:
        return await limiter.spent_usd(principal, MODEL, "key")

    first = request(principal)
    await admit_held(limiter, first)
    assert await spent() == Decimal(BODY_MICRO) / 1_000_000
    await settle_held(limiter, served(first, 50, 20))  # 50*10 + 20*30 = 1100 micro-USD
    assert await spent() == Decimal("0.0011")

    held = [request(principal) for _ in range(3)]
    for ctx in held:  # 1100 + 4040 + 4040 < 10000: the third is admitted too, crossing the line
        await admit_held(limiter, ctx)
    assert await spent() == Decimal(1100 + 3 * BODY_MICRO) / 1_000_000
    refused = request(principal)
    with pytest.raises(QuotaExceeded) as info:
        await admit_held(limiter, refused)
    error = info.value
    assert (error.status, error.type, error.code) == (429, "insufficient_quota", "insufficient_quota")
    assert error.headers()["x-should-retry"] == "false"
    assert error.retry_after is None  # a budget with no period never comes back by waiting
    assert refused.reservation is None

    await settle_held(limiter, served(held[0], 104, 100))  # exactly the estimate
    await settle_held(limiter, served(held[1], 10, 10))  # 400
    failed = held[2]
    failed.status = 502  # the upstream failed: nothing was used, all of it comes back
    await settle_held(limiter, failed)
    assert await spent() == Decimal(1100 + BODY_MICRO + 400) / 1_000_000


async def test_a_request_served_without_usage_keeps_its_reservation(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    principal = key(Limits(budget_usd=Decimal(1), tpm=1000))
    ctx = request(principal)
    await admit_held(limiter, ctx)
    ctx.status = 200  # answered, but the upstream reported no usage
    await settle_held(limiter, ctx)
    await settle_held(limiter, ctx)  # a second settle changes nothing
    assert await limiter.spent_usd(principal, MODEL, "key") == Decimal(BODY_MICRO) / 1_000_000
    probe = request(principal)
    await admit_held(limiter, probe)
    assert probe.response_headers["x-ratelimit-remaining-tokens"] == str(1000 - 2 * BODY_TOKENS)


async def test_budget_periods_roll_over_at_local_midnight(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    tokyo = ZoneInfo("Asia/Tokyo")
    clock.now = dt.datetime(2026, 3, 10, 23, 59, 30, tzinfo=tokyo).timestamp()
    limiter = await make_limiter(timezone=tokyo)
    principal = key(Limits(budget_usd=Decimal("0.004"), budget_period=BudgetPeriod.DAILY))
    late = request(principal)
    await admit_held(limiter, late)
    with pytest.raises(QuotaExceeded) as info:
        await admit_held(limiter, request(principal))
    assert info.value.retry_after == pytest.approx(30)
    assert "daily" in info.value.message

    clock.advance(30)  # midnight in Tokyo: a new day, a new budget
    early = request(principal)
    await admit_held(limiter, early)
    # The request reserved yesterday settles today: yesterday's spend changes, today's does not.
    await settle_held(limiter, served(late, 10, 10))
    assert await limiter.spent_usd(principal, MODEL, "key") == Decimal(BODY_MICRO) / 1_000_000
    clock.advance(-1)
    assert await limiter.spent_usd(principal, MODEL, "key") == Decimal(400) / 1_000_000


async def test_headers_show_the_tightest_of_key_team_and_model(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter(model_limits=Limits(rpm=100, tpm=500))
    principal = key(Limits(rpm=10, tpm=100_000), Limits(rpm=3))
    ctx = request(principal)
    await admit_held(limiter, ctx)
    assert ctx.response_headers == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "20s",
        "x-ratelimit-limit-tokens": "500",
        "x-ratelimit-remaining-tokens": str(500 - BODY_TOKENS),
        "x-ratelimit-reset-tokens": "24.48s",
    }


async def test_a_refusal_by_one_scope_reserves_nothing_in_the_others(make_limiter: MakeLimiter) -> None:
    # On a cluster, key, team and model are three slots and three script calls.
    limiter = await make_limiter(model_limits=Limits(rpm=2))
    principal = key(Limits(rpm=2), Limits(tpm=300))
    first = request(principal)
    await admit_held(limiter, first)
    with pytest.raises(RateLimited) as info:
        await admit_held(limiter, request(principal))  # the team's tokens are short
    assert info.value.type == "tokens"
    await settle_held(limiter, served(first, 0, 0))  # the team's bucket is full again
    third = request(principal)
    await admit_held(limiter, third)  # the key's and the model's second request: the refused one took none
    assert third.response_headers["x-ratelimit-remaining-requests"] == "0"


async def test_model_limits_apply_to_every_caller(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter(model_limits=Limits(rpm=1))
    master = key(team=None, key_id="master")
    await admit_held(limiter, request(master))
    with pytest.raises(RateLimited) as info:
        await admit_held(limiter, request(key(key_id="someone-else")))
    assert "model m1" in info.value.message


async def test_no_limits_means_no_call_no_headers_no_reservation(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    ctx = request(key())
    await admit_held(limiter, ctx)
    assert ctx.response_headers == {}
    assert ctx.reservation is None
    await settle_held(limiter, ctx)
    assert limiter.stats.admitted == 0


async def test_keys_of_one_team_share_the_team_limit(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    team = Limits(rpm=2)
    await admit_held(limiter, request(key(team_limits=team, key_id="k1")))
    await admit_held(limiter, request(key(team_limits=team, key_id="k2")))
    with pytest.raises(RateLimited) as info:
        await admit_held(limiter, request(key(team_limits=team, key_id="k3")))
    assert "team team-a" in info.value.message
    # Another team is not affected.
    await admit_held(limiter, request(key(team_limits=team, key_id="k4", team="team-b")))


async def test_a_zero_budget_refuses_everything(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    with pytest.raises(QuotaExceeded):
        await admit_held(limiter, request(key(Limits(budget_usd=Decimal(0)))))


async def test_absurd_numbers_are_capped_not_turned_into_errors(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    principal = key(Limits(tpm=1000, budget_usd=Decimal("1e12")))
    ctx = request(principal, {**BODY, "max_tokens": 10**30})
    await admit_held(limiter, ctx)  # a full bucket admits even this; its reservation is capped
    await settle_held(limiter, served(ctx, 10**25, 10**25))
    assert limiter.stats.settle_failures == 0 and limiter.stats.redis_failures == 0
    with pytest.raises(QuotaExceeded):  # it spent (a capped) everything
        await admit_held(limiter, request(principal))


async def test_the_admin_api_reads_live_spend_of_keys_and_teams(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    import datetime as dt

    limiter = await make_limiter()
    key_limits = Limits(budget_usd=Decimal(1), budget_period=BudgetPeriod.MONTHLY)
    team_limits = Limits(budget_usd=Decimal(5))
    principal = key(key_limits, team_limits)
    ctx = request(principal)
    await admit_held(limiter, ctx)
    in_flight = await limiter.current("key", "key-1", key_limits)
    assert in_flight is not None and in_flight.spent_usd == Decimal(BODY_MICRO) / 1_000_000
    assert in_flight.period_start == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert in_flight.period_end == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    await settle_held(limiter, served(ctx, 10, 10))
    settled = await limiter.current("team", "team-a", team_limits)
    assert settled is not None and settled.spent_usd == Decimal("0.0004")
    assert (settled.period_start, settled.period_end) == (None, None)
    assert await limiter.current("key", "key-1", Limits(rpm=5)) is None  # no budget, no spend counter


async def test_a_key_that_moves_to_another_team_keeps_its_spend(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter()
    budget = Limits(budget_usd=Decimal("0.004"))
    await admit_held(limiter, request(key(budget, team="team-a")))
    with pytest.raises(QuotaExceeded):
        await admit_held(limiter, request(key(budget, team="team-b")))
