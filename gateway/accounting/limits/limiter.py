"""The `Admission` of the request path: rate limits and budgets per key, team and model.

`admit` works out which limits apply (scopes.py; once per key and model group, plans.py),
estimates what the request will use (estimate.py), and asks the backend to check and reserve
everything in one call; `settle` replaces the reservation by the real usage. When Redis cannot
answer, the failure mode decides: `closed` refuses limited requests with 503, `open` enforces
the same limits per process until Redis answers again. It switches only when Redis is down (it
refuses connections, or stalls twice in a row); one stall of a connection that was answering
fails only the calls it held. Either way a log line says so once, and `stats` counts it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from gateway.accounting.limits import estimate
from gateway.accounting.limits.checks import MAX_AMOUNT, Backend, Check, Kind, Outcome, Unavailable, from_fields
from gateway.accounting.limits.headers import go_duration, rate_limit_headers
from gateway.accounting.limits.leases import LeaseKeeper
from gateway.accounting.limits.periods import Period, current_period
from gateway.accounting.limits.plans import Plan, Plans, cap
from gateway.accounting.limits.scopes import ScopeKind, scope_base, scopes_for
from gateway.config.file import Price
from gateway.core.errors import GatewayError, QuotaExceeded, RateLimited, ServiceUnavailable
from gateway.core.request import ClientRequest
from gateway.core.types import BudgetPeriod, BudgetUsage, Limits, Principal, RequestOutcome, Spend

log = logging.getLogger("gateway.limits")

FailureMode = Literal["closed", "open"]
# A budget counter outlives its period by this much, so that late settles still find it.
BUDGET_GRACE_MS = 3_600_000


class TokensRateLimited(RateLimited):
    type = "tokens"


@dataclass(frozen=True, slots=True)
class LimiterOptions:
    prefix: str = "gw"
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    # Output tokens reserved for a request that sets no max_tokens.
    default_output_tokens: int = 1024
    # How long a parallel slot lives if the process holding it dies (renewed while its request lives).
    lease_s: float = 10.0
    failure_mode: FailureMode = "closed"
    # After Redis fails, how long to stay on the failure mode before asking Redis again.
    recheck_s: float = 1.0


@dataclass(slots=True)
class LimiterStats:
    """Counters for the metrics exporter: only ever incremented."""

    admitted: int = 0
    # By reason: requests, tokens, parallel, budget.
    refused: Counter[str] = field(default_factory=Counter)
    redis_failures: int = 0
    # Open mode: requests checked by the per-process fallback while Redis was down.
    fallback_admissions: int = 0
    # Closed mode: requests refused with 503 while Redis was down.
    unavailable_refusals: int = 0
    settle_failures: int = 0
    # Failures that did not switch to the failure mode: one stall on a healthy connection.
    redis_stalls: int = 0
    redis_down: bool = False


class _Budget(NamedTuple):
    """A key's or team's budget among a reservation's checks: reported once the request settles."""

    # Its check's position among the reservation's (`index` would hide the tuple's own method).
    position: int
    scope: Literal["key", "team"]
    id: str
    budget_usd: Decimal
    period: Period


@dataclass(slots=True)
class Reservation:
    backend: Backend
    checks: Sequence[Check]
    member: str
    tokens: int
    micro_usd: int
    budgets: Sequence[_Budget] = ()
    # The x-ratelimit-* headers every response to the request carries.
    headers: dict[str, str] = field(default_factory=dict)


class Limiter:
    def __init__(
        self,
        backend: Backend,
        *,
        options: LimiterOptions,
        model_limits: dict[str, Limits] | None = None,
        model_prices: dict[str, Price] | None = None,
        fallback: Backend | None = None,
        clock: Callable[[], float] = time.time,
        group_name: Callable[[str], str] | None = None,
    ) -> None:
        self.backend = backend
        self.fallback = fallback
        self.options = options
        self.model_limits = model_limits or {}
        self.model_prices = model_prices or {}
        self.clock = clock
        # The model group a requested name belongs to (wildcard routes): its caps are the group's.
        self.group_name = group_name or str
        self.stats = LimiterStats()
        self._recheck_at = 0.0
        self._periods: dict[BudgetPeriod | None, Period] = {}
        self._utc_bounds: dict[Period, tuple[dt.datetime | None, dt.datetime | None]] = {}
        self._plans = Plans(options.prefix)
        self._lease_ms = int(options.lease_s * 1000)
        self.leases = LeaseKeeper(options.lease_s, clock)

    async def start(self) -> None:
        try:
            await self.backend.start()
        except Unavailable as exc:
            self._went_down(exc)
        self.leases.start()

    async def close(self) -> None:
        await self.leases.stop()
        await self.backend.close()
        if self.fallback is not None:
            await self.fallback.close()

    async def admit(self, request: ClientRequest) -> Reservation | None:
        """What was reserved (None: no limit applies), to hand back to `settle`; a refusal carries
        the rate-limit headers too."""
        group = self.group_name(request.model) if self.model_limits or self.model_prices else request.model
        plan = self._plans.get(request.principal, group, self.model_limits.get(group))
        if plan is None:
            return None
        now = self.clock()
        tokens = micro = 0
        if plan.estimates:
            prompt = estimate.prompt_tokens(request.body, request.endpoint)
            output = estimate.output_tokens(request.body, request.endpoint, self.options.default_output_tokens)
            tokens = min(prompt + output, MAX_AMOUNT)
            units = estimate.planned_units(request.body, request.endpoint)
            micro = min(estimate.micro_usd(self.model_prices.get(group), prompt, output, units), MAX_AMOUNT)
        checks, budgets = self._checks(plan, tokens, micro, now)
        member = os.urandom(8).hex()
        backend, outcomes = await self._reserve(checks, _ms(now), member)
        headers = rate_limit_headers(checks, outcomes, plan.requests_at, plan.tokens_at)
        for outcome in outcomes:
            if not outcome.ok:
                error = self._refusal(plan, checks, outcomes, now)
                error.extra_headers.update(headers)
                raise error
        self.stats.admitted += 1
        if plan.parallel_keys:
            self.leases.hold(backend, plan.parallel_keys, member)
        return Reservation(backend, checks, member, tokens, micro, budgets, headers)

    async def settle(self, reservation: Reservation, outcome: RequestOutcome) -> list[BudgetUsage]:
        """Replace the reservation by what was used; each budget it counted against, as it now stands."""
        self.leases.release(reservation.backend, reservation.member)
        tokens, micro = _used(outcome, reservation)
        # Only what changes a counter, and the budgets (their counters are reported): a request
        # that used what it reserved leaves its RPM and TPM buckets alone.
        positions = []
        checks: list[Check] = []
        deltas: list[int] = []
        changed = False
        for at, check in enumerate(reservation.checks):
            kind = check.kind
            if kind is Kind.TPM:
                delta = tokens - check.amount
                if not delta:
                    continue
            elif kind is Kind.BUDGET:
                delta = micro - check.amount
            elif kind is Kind.PARALLEL:
                delta = -1
            else:  # RPM: a request is a request, whatever it used
                continue
            changed = changed or delta != 0
            positions.append(at)
            checks.append(check)
            deltas.append(delta)
        if not changed and not reservation.budgets:
            return []
        try:
            counters = await reservation.backend.adjust(checks, deltas, _ms(self.clock()), reservation.member)
        except Unavailable as exc:
            # What stays reserved errs toward refusing; parallel slots come back at their lease.
            self.stats.settle_failures += 1
            self._went_down(exc)
            return []
        if not reservation.budgets:
            return []
        # Each key's and team's budget as it stands now, for the budget gauges and alerts.
        spent = dict(zip(positions, counters, strict=True))
        budgets = []
        for b in reservation.budgets:
            start, end = self._period_utc(b.period)
            budgets.append(BudgetUsage(b.scope, b.id, _usd_of(spent[b.position]), b.budget_usd, start, end))
        return budgets

    async def current(self, scope: Literal["key", "team"], id: str, limits: Limits) -> Spend | None:
        """What a key or team has spent in its current budget period, requests in flight included
        (the admin API's `SpendReader`). None when it has no budget, or the counters cannot be read:
        unknown, never a made-up zero."""
        if limits.budget_usd is None:
            return None
        now = self.clock()
        period = current_period(now, limits.budget_period, self.options.timezone)
        key = f"{scope_base(self.options.prefix, scope, id)}:usd:{period.name}"
        try:
            micro = await self.backend.read(key, _ms(now))
        except Unavailable as exc:
            self._went_down(exc)
            return None
        return Spend(
            spent_usd=_usd_of(micro),
            period_start=_utc(period.start),
            period_end=_utc(period.end),
            extra={"includes_in_flight": True},
        )

    async def spent_usd(self, principal: Principal | None, model: str, scope: ScopeKind) -> Decimal | None:
        """What one scope of a request has spent in its current budget period; None: no budget."""
        group = self.group_name(model)
        for s in scopes_for(self.options.prefix, principal, group, self.model_limits.get(group)):
            if s.kind == scope and s.limits.budget_usd is not None:
                period = current_period(self.clock(), s.limits.budget_period, self.options.timezone)
                micro = await self.backend.read(f"{s.base}:usd:{period.name}", _ms(self.clock()))
                return _usd_of(micro)
        return None

    def _checks(self, plan: Plan, tokens: int, micro: int, now: float) -> tuple[list[Check], tuple[_Budget, ...]]:
        """The plan's checks with this request's amounts, and the budgets they count against."""
        checks: list[Check] = []
        budgets: list[_Budget] = []
        for check, scope, period_kind, owner in plan.steps:
            if check.kind is Kind.TPM:
                # A request larger than the whole limit waits for a full bucket, then passes; settle
                # charges what it really used.
                check = from_fields(Check, (Kind.TPM, check.key, check.limit, min(tokens, check.limit), 0))
            elif check.kind is Kind.BUDGET:
                period = self._period(now, period_kind)
                end = period.end
                ttl = math.ceil((end - now) * 1000) + BUDGET_GRACE_MS if end is not None else 0
                check = from_fields(Check, (Kind.BUDGET, check.key + period.name, check.limit, micro, ttl))
                if owner is not None:
                    assert scope.limits.budget_usd is not None  # a budget check has a budget
                    budgets.append(from_fields(_Budget, (len(checks), *owner, scope.limits.budget_usd, period)))
            checks.append(check)
        return checks, tuple(budgets)

    def _period_utc(self, period: Period) -> tuple[dt.datetime | None, dt.datetime | None]:
        bounds = self._utc_bounds.get(period)
        if bounds is None:
            if len(self._utc_bounds) > 16:  # old periods
                self._utc_bounds.clear()
            bounds = self._utc_bounds[period] = (_utc(period.start), _utc(period.end))
        return bounds

    def _period(self, now: float, kind: BudgetPeriod | None) -> Period:
        # The calendar arithmetic is worth doing once per period, not once per request.
        cached = self._periods.get(kind)
        if cached is None or cached.start is None or cached.end is None or not cached.start <= now < cached.end:
            cached = self._periods[kind] = current_period(now, kind, self.options.timezone)
        return cached

    async def _reserve(self, checks: Sequence[Check], now_ms: int, member: str) -> tuple[Backend, list[Outcome]]:
        lease_ms = self._lease_ms
        if time.monotonic() >= self._recheck_at:
            try:
                outcomes = await self.backend.admit(checks, now_ms, member, lease_ms)
            except Unavailable as exc:
                self._went_down(exc)
            else:
                self._came_back()
                return self.backend, outcomes
        if self.fallback is None or self.options.failure_mode == "closed":
            self.stats.unavailable_refusals += 1
            raise ServiceUnavailable(
                "The gateway cannot check this request's rate limits right now. Please retry shortly.",
                code="limits_unavailable",
                retry_after=self.options.recheck_s,
            )
        self.stats.fallback_admissions += 1
        return self.fallback, await self.fallback.admit(checks, now_ms, member, lease_ms)

    def _went_down(self, exc: Unavailable) -> None:
        self.stats.redis_failures += 1
        if not exc.down:
            # A slow moment (one stall of a connection that was answering): the calls it held
            # failed, the next ones ask Redis again at once.
            self.stats.redis_stalls += 1
            return
        self._recheck_at = time.monotonic() + self.options.recheck_s
        if not self.stats.redis_down:
            self.stats.redis_down = True
            # The exception's class name only: messages from a client library may carry addresses.
            degraded = self.fallback is not None and self.options.failure_mode == "open"
            what = "enforcing limits per process" if degraded else "refusing limited requests with 503"
            log.warning("limits: Redis is unavailable (%s); %s until it answers again", exc, what)

    def _came_back(self) -> None:
        if self.stats.redis_down:
            self.stats.redis_down = False
            log.warning("limits: Redis answers again; limits are shared again")

    def _refusal(self, plan: Plan, checks: Sequence[Check], outcomes: Sequence[Outcome], now: float) -> GatewayError:
        refused = [(c, s.scope, o) for c, s, o in zip(checks, plan.steps, outcomes, strict=True) if not o.ok]
        for check, scope, _ in refused:
            if check.kind is Kind.BUDGET:
                self.stats.refused["budget"] += 1
                budget = scope.limits.budget_usd
                period = scope.limits.budget_period
                when = f" until the {period} budget resets" if period else ""
                end = self._period(now, period).end
                return QuotaExceeded(
                    f"You exceeded your current quota: the budget of {scope.label} "
                    f"(${_usd(budget)}{' ' + str(period) if period else ''}) is spent. "
                    f"Requests are refused{when}.",
                    retry_after=max(1.0, end - now) if end is not None else None,
                )
        retry_ms = max(o.retry_ms for _, _, o in refused)
        check, first, _ = min(refused, key=lambda r: [Kind.TPM, Kind.RPM, Kind.PARALLEL].index(r[0].kind))
        label = first.label
        wait = f"Please try again in {go_duration(retry_ms)}."
        if check.kind is Kind.TPM:
            self.stats.refused["tokens"] += 1
            return TokensRateLimited(
                f"Rate limit reached for {label} on tokens per min (TPM): Limit {check.limit}, "
                f"Requested {check.amount}. {wait}",
                retry_after=retry_ms / 1000,
            )
        if check.kind is Kind.RPM:
            self.stats.refused["requests"] += 1
            return RateLimited(
                f"Rate limit reached for {label} on requests per min (RPM): Limit {check.limit}. {wait}",
                retry_after=retry_ms / 1000,
            )
        self.stats.refused["parallel"] += 1
        return RateLimited(
            f"Too many parallel requests for {label}: Limit {check.limit}. {wait}", retry_after=retry_ms / 1000
        )


def _used(outcome: RequestOutcome, reservation: Reservation) -> tuple[int, int]:
    """Tokens and micro-USD the request really used."""
    if outcome.usage is not None:
        micro = estimate.to_micro(outcome.cost_usd) if outcome.cost_usd is not None else 0
        return cap(outcome.usage.prompt_tokens + outcome.usage.completion_tokens), cap(micro)
    if outcome.status == 200 or outcome.cancelled:
        # Served (or cut off mid-answer) without a usage report: the reservation stands.
        return reservation.tokens, reservation.micro_usd
    # Refused or failed before or at the upstream: nothing was used.
    return 0, 0


def _usd_of(micro: int) -> Decimal:
    # Exact: the integer's decimal point moved six places (as dividing by a million and
    # quantizing to the micro-dollar gives, for less).
    return Decimal(micro).scaleb(-6)


def _utc(epoch_s: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC) if epoch_s is not None else None


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _usd(amount: Decimal | None) -> str:
    return format(amount, "f") if amount is not None else "0"
