"""Concurrency cannot push spend or tokens past a limit: many requests at once, over several
clients of the same store (each Redis backend here has its own connections, like separate
gateway processes)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from decimal import Decimal

from gateway.accounting.limits import Limiter
from gateway.core.errors import QuotaExceeded, RateLimited
from gateway.core.types import Limits
from tests.accounting.limits.conftest import (
    BODY_MICRO,
    BODY_TOKENS,
    MODEL,
    Held,
    admit_held,
    key,
    request,
    served,
    settle_held,
)

MakeLimiter = Callable[..., Awaitable[Limiter]]
REQUESTS = 200
PROCESSES = 4


async def _race(limiters: list[Limiter], principal: object, settle: Callable[[Held], object]) -> list[str]:
    """REQUESTS requests at once, spread over the limiters; each admitted one is settled a moment later."""
    outcomes: list[str] = []

    async def one(n: int) -> None:
        limiter = limiters[n % len(limiters)]
        ctx = request(principal)  # type: ignore[arg-type]
        try:
            await admit_held(limiter, ctx)
        except (QuotaExceeded, RateLimited) as error:
            outcomes.append(error.type)
            return
        outcomes.append("admitted")
        await asyncio.sleep(random.uniform(0, 0.005))  # the upstream call
        settle(ctx)
        await settle_held(limiter, ctx)

    await asyncio.gather(*(one(n) for n in range(REQUESTS)))
    return outcomes


async def test_200_concurrent_requests_cannot_spend_past_a_budget_that_covers_20(make_limiter: MakeLimiter) -> None:
    budget = Decimal(20 * BODY_MICRO) / 1_000_000
    principal = key(Limits(budget_usd=budget))
    limiters = [await make_limiter() for _ in range(PROCESSES)]

    # Every request costs exactly what it reserved.
    outcomes = await _race(limiters, principal, lambda ctx: served(ctx, 104, 100))

    assert outcomes.count("admitted") == 20
    assert outcomes.count("insufficient_quota") == REQUESTS - 20
    spent = await limiters[0].spent_usd(principal, MODEL, "key")
    assert spent == budget


async def test_refunds_during_the_race_still_keep_spend_within_budget_plus_one_request(
    make_limiter: MakeLimiter,
) -> None:
    budget = Decimal(20 * BODY_MICRO) / 1_000_000
    one_request = Decimal(BODY_MICRO) / 1_000_000
    principal = key(Limits(budget_usd=budget))
    limiters = [await make_limiter() for _ in range(PROCESSES)]

    # Requests cost 30% to 100% of their reservation; what they do not use comes back while
    # others are still being admitted.
    outcomes = await _race(
        limiters, principal, lambda ctx: served(ctx, random.randint(30, 104), random.randint(30, 100))
    )

    admitted = outcomes.count("admitted")
    assert admitted >= 20
    assert outcomes.count("insufficient_quota") == REQUESTS - admitted > 0
    spent = await limiters[0].spent_usd(principal, MODEL, "key")
    assert spent is not None and spent <= budget + one_request


async def test_200_concurrent_requests_cannot_take_more_tokens_than_the_tpm_limit(make_limiter: MakeLimiter) -> None:
    tpm = 10_000
    principal = key(team_limits=Limits(tpm=tpm))
    limiters = [await make_limiter() for _ in range(PROCESSES)]
    held: list[Held] = []

    async def one(n: int) -> str:
        ctx = request(principal)
        try:
            await admit_held(limiters[n % PROCESSES], ctx)
        except RateLimited as error:
            return error.type
        held.append(ctx)
        return "admitted"

    # The clock stands still: nothing refills during the race, so the count is exact.
    outcomes = await asyncio.gather(*(one(n) for n in range(REQUESTS)))

    assert outcomes.count("admitted") == tpm // BODY_TOKENS
    assert outcomes.count("tokens") == REQUESTS - tpm // BODY_TOKENS
    remaining = sorted(int(ctx.response_headers["x-ratelimit-remaining-tokens"]) for ctx in held)
    assert remaining[0] == tpm - (tpm // BODY_TOKENS) * BODY_TOKENS
    # Each admission saw a different amount left: no two took the same tokens.
    assert len(set(remaining)) == len(remaining)
