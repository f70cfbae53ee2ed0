"""What a caller's requests to one model group are checked against, worked out once per caller.

The scopes, their counters' keys, the capped limits and which headers and budgets come out of
them are the same for every request of one key to one model group; only the amounts (the
estimate), a budget's period (the end of its counter's name) and its TTL change from request to
request, and those the limiter fills in. A `Plan` is cached on the values it is made of (key and
team ids, their limits, the group and its limits), never on an object's identity: a key whose
limits were changed arrives as a Principal with other limits, and gets a plan of its own.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from gateway.accounting.limits import estimate
from gateway.accounting.limits.checks import MAX_AMOUNT, Check, Kind
from gateway.accounting.limits.scopes import Scope, scopes_for
from gateway.core.types import BudgetPeriod, Limits, Principal

# Plans kept per limiter: distinct (key, model group) pairs seen lately. Past this the cache
# starts again; a plan costs a few microseconds to make.
MAX_PLANS = 4096


class Step(NamedTuple):
    """One check of the plan. RPM and parallel checks are used as they are; a TPM check's amount
    is the request's tokens (up to the limit); a budget check's key is the stem its period's name
    completes, and its amount and TTL are the request's."""

    check: Check
    scope: Scope
    # Budget checks: the period kind, and whose budget it is (reported after settle).
    period: BudgetPeriod | None = None
    owner: tuple[Literal["key", "team"], str] | None = None


class Plan(NamedTuple):
    steps: tuple[Step, ...]
    # Whether any check counts tokens or money: only then is the request's size estimated.
    estimates: bool
    # Positions of the RPM and of the TPM checks (the x-ratelimit-* headers come from them).
    requests_at: tuple[int, ...]
    tokens_at: tuple[int, ...]
    parallel_keys: tuple[str, ...]


def make_plan(prefix: str, principal: Principal | None, group: str, model_limits: Limits | None) -> Plan | None:
    """None: no limit applies."""
    scopes = scopes_for(prefix, principal, group, model_limits)
    if not scopes:
        return None
    steps: list[Step] = []
    for scope in scopes:
        limits, base = scope.limits, scope.base
        if limits.rpm is not None:
            steps.append(Step(Check(Kind.RPM, base + ":rpm", cap(limits.rpm), 1), scope))
        if limits.tpm is not None:
            steps.append(Step(Check(Kind.TPM, base + ":tpm", cap(limits.tpm), 0), scope))
        if limits.max_parallel is not None:
            steps.append(Step(Check(Kind.PARALLEL, base + ":par", cap(limits.max_parallel), 1), scope))
        if limits.budget_usd is not None:
            limit = cap(int(limits.budget_usd * estimate.MICRO))
            owner = _owner(scope, principal)
            steps.append(Step(Check(Kind.BUDGET, base + ":usd:", limit, 0), scope, limits.budget_period, owner))
    kinds = [s.check.kind for s in steps]
    return Plan(
        steps=tuple(steps),
        estimates=Kind.TPM in kinds or Kind.BUDGET in kinds,
        requests_at=tuple(i for i, kind in enumerate(kinds) if kind is Kind.RPM),
        tokens_at=tuple(i for i, kind in enumerate(kinds) if kind is Kind.TPM),
        parallel_keys=tuple(s.check.key for s in steps if s.check.kind is Kind.PARALLEL),
    )


class Plans:
    """The plans of the (caller, model group) pairs seen lately, made on first use."""

    def __init__(self, prefix: str, max_plans: int = MAX_PLANS) -> None:
        self.prefix = prefix
        self.max_plans = max_plans
        self._plans: dict[tuple[object, ...], Plan | None] = {}

    def get(self, principal: Principal | None, group: str, model_limits: Limits | None) -> Plan | None:
        if principal is None:
            key: tuple[object, ...] = (group, model_limits)
        else:
            key = (group, model_limits, principal.key_id, principal.team_id, principal.key_limits,
                   principal.team_limits)  # fmt: skip
        try:
            return self._plans[key]
        except KeyError:
            pass
        if len(self._plans) >= self.max_plans:
            self._plans.clear()
        plan = self._plans[key] = make_plan(self.prefix, principal, group, model_limits)
        return plan

    def __len__(self) -> int:
        return len(self._plans)


def cap(value: int) -> int:
    return max(0, min(value, MAX_AMOUNT))


def _owner(scope: Scope, principal: Principal | None) -> tuple[Literal["key", "team"], str] | None:
    if principal is None:
        return None
    if scope.kind == "key":
        return ("key", principal.key_id)
    if scope.kind == "team" and principal.team_id:
        return ("team", principal.team_id)
    return None
