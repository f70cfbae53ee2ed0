"""Recommendations from the ledger, each with the money at stake.

    cheaper_deployment  a model group where one deployment served the group's requests at a lower
                        price than another with a comparable error rate and latency. Comparable:
                        both served at least `min_requests`, the cheaper one's error rate is at
                        most `max_error_rate_increase` (absolute: 0.01 is one percentage point)
                        above the dearer one's, and its mean latency of successful requests at most
                        `max_latency_ratio` times the dearer one's. Money: the dearer deployment's
                        spend minus the same tokens at the cheaper one's price (the spend that would
                        move times the price difference).
    cache               exact repeats: a request whose fingerprint (gateway/core/fingerprint.py)
                        the same team (or key, without a team) sent before, whose earlier answer
                        succeeded at most `cache_ttl_s` earlier, as the response cache would have
                        stored and answered it. Money: what those repeats cost.
    idle_key            a live key that spent in the last `lookback_days` but sent nothing in the
                        last `idle_weeks` weeks. Money: what it spent over the lookback, which is
                        what it is there to spend again if it leaked (its budget, if any, is shown).

Read from `ledger_requests` and `ledger_daily` on the key store's `Database`; money is summed
exactly (PostgreSQL's numeric, or SQLite's decimal text in Python). Prices and the keys come from
the caller, so this module needs neither the router nor the key store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from gateway.accounting.pricing import charge
from gateway.config.file import Price
from gateway.identity.store.sql import Database

ZERO = Decimal(0)
ERRORS = "(error_type IS NOT NULL OR (status >= 400 AND status <> 499))"
OK = "(error_type IS NULL AND status < 400)"
# (model group, deployment id) -> the deployment's price now, or None if it is gone or unpriced.
PriceOf = Callable[[str, str], Price | None]


@dataclass(frozen=True, slots=True)
class Criteria:
    days: int = 28
    min_requests: int = 100
    max_error_rate_increase: float = 0.01
    max_latency_ratio: float = 1.2
    cache_ttl_s: float = 3600.0
    idle_weeks: int = 4
    lookback_days: int = 365


@dataclass(frozen=True, slots=True)
class LiveKey:
    id: str
    name: str
    budget_usd: Decimal | None
    budget_period: str | None


@dataclass(frozen=True, slots=True)
class Recommendation:
    kind: str
    subject: str
    money_usd: Decimal
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "money_usd": str(self.money_usd),
                "summary": self.summary, "details": self.details}


@dataclass(slots=True)
class DeploymentStats:
    model: str
    deployment: str
    requests: int = 0
    errors: int = 0
    mean_latency_ms: float | None = None  # of successful requests
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: Decimal = ZERO

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


async def recommend(db: Database, *, postgres: bool, price_of: PriceOf, keys: Iterable[LiveKey],
                    criteria: Criteria, now: datetime | None = None) -> list[Recommendation]:
    now = now or datetime.now(UTC)
    since = now - timedelta(days=criteria.days)
    stats = await deployment_stats(db, since, now, postgres=postgres)
    found = cheaper_deployments(stats, price_of, criteria)
    repeat = await repeats(db, since, now, criteria.cache_ttl_s, postgres=postgres)
    if repeat is not None:
        found.append(repeat)
    today = now.date()
    activity = await key_activity(db, today - timedelta(days=criteria.lookback_days), postgres=postgres)
    found += idle_keys(activity, keys, today, criteria)
    found.sort(key=lambda r: r.money_usd, reverse=True)
    return found


# Cheaper deployments


async def deployment_stats(db: Database, since: datetime, until: datetime, *, postgres: bool
                           ) -> list[DeploymentStats]:
    """Per model asked for and deployment that served it, no fallbacks and no cache hits."""
    where = "ts >= $1 AND ts < $2 AND deployment IS NOT NULL AND requested_model IS NOT NULL " \
            "AND NOT fallback AND NOT cache_hit AND status <> 499 AND cost_usd IS NOT NULL"
    group = "requested_model, deployment"
    async with db.reader() as tx:
        rows = await tx.fetch(
            f"SELECT requested_model AS model, deployment, count(*) AS requests, "
            f"sum(CASE WHEN {ERRORS} THEN 1 ELSE 0 END) AS errors, "
            f"avg(CASE WHEN {OK} THEN latency_ms END) AS latency, sum(prompt_tokens) AS prompt_tokens, "
            "sum(completion_tokens) AS completion_tokens, sum(cached_tokens) AS cached_tokens"
            + (", sum(cost_usd) AS cost" if postgres else "")
            + f" FROM ledger_requests WHERE {where} GROUP BY {group}", since, until)
        costs: dict[tuple[str, str], Decimal] = {}
        if not postgres:
            for row in await tx.fetch(f"SELECT requested_model AS model, deployment, cost_usd FROM ledger_requests "
                                      f"WHERE {where}", since, until):
                pair = (row["model"], row["deployment"])
                costs[pair] = costs.get(pair, ZERO) + Decimal(row["cost_usd"])
    return [DeploymentStats(
        r["model"], r["deployment"], int(r["requests"]), int(r["errors"] or 0),
        None if r["latency"] is None else float(r["latency"]), int(r["prompt_tokens"] or 0),
        int(r["completion_tokens"] or 0), int(r["cached_tokens"] or 0),
        Decimal(r["cost"]) if postgres else costs.get((r["model"], r["deployment"]), ZERO),
    ) for r in rows]


def at_price(price: Price, s: DeploymentStats) -> Decimal:
    # charge() adds the per-request price once; the deployment served `requests` of them.
    return charge(price, s.prompt_tokens, s.completion_tokens, s.cached_tokens) + price.per_request * (s.requests - 1)


def comparable(cheap: DeploymentStats, dear: DeploymentStats, c: Criteria) -> bool:
    if min(cheap.requests, dear.requests) < c.min_requests:
        return False
    if cheap.error_rate > dear.error_rate + c.max_error_rate_increase:
        return False
    if cheap.mean_latency_ms is None or dear.mean_latency_ms is None:
        return False
    return cheap.mean_latency_ms <= dear.mean_latency_ms * c.max_latency_ratio


def cheaper_deployments(stats: list[DeploymentStats], price_of: PriceOf, c: Criteria) -> list[Recommendation]:
    by_model: dict[str, list[DeploymentStats]] = {}
    for s in stats:
        by_model.setdefault(s.model, []).append(s)
    found = []
    for model, served in sorted(by_model.items()):
        for dear in served:
            best: tuple[Decimal, DeploymentStats] | None = None
            for cheap in served:
                price = price_of(model, cheap.deployment)
                if cheap is dear or price is None or not comparable(cheap, dear, c):
                    continue
                saved = dear.cost_usd - at_price(price, dear)
                if saved > 0 and (best is None or saved > best[0]):
                    best = (saved, cheap)
            if best is None:
                continue
            saved, cheap = best
            found.append(Recommendation(
                "cheaper_deployment", model, saved,
                f"Send {model}'s traffic on {dear.deployment} to {cheap.deployment}: comparable errors and "
                f"latency, {saved:.2f} USD less for the same tokens.",
                {"model": model, "from_deployment": _view(dear), "to_deployment": _view(cheap),
                 "spend_that_would_move_usd": str(dear.cost_usd)}))
    return found


def _view(s: DeploymentStats) -> dict[str, Any]:
    return {"deployment": s.deployment, "requests": s.requests, "error_rate": round(s.error_rate, 4),
            "mean_latency_ms": None if s.mean_latency_ms is None else round(s.mean_latency_ms, 1),
            "cost_usd": str(s.cost_usd)}


# Exact repeats


@dataclass(frozen=True, slots=True)
class Seen:
    scope: str
    fingerprint: str
    ts: datetime
    ok: bool
    cost: Decimal


def would_hit(rows: Iterable[Seen], ttl_s: float) -> tuple[int, Decimal]:
    """Repeats a cache with this ttl would have answered, and what they cost; rows oldest first.

    An answer is stored when a request succeeds with no entry to answer it, and answers every
    repeat until it expires, as gateway/plugins/cache does."""
    stored: dict[tuple[str, str], datetime] = {}
    ttl = timedelta(seconds=ttl_s)
    hits, cost = 0, ZERO
    for row in rows:
        pair = (row.scope, row.fingerprint)
        at = stored.get(pair)
        if at is not None and row.ts - at <= ttl:
            hits, cost = hits + 1, cost + row.cost
        elif row.ok:
            stored[pair] = row.ts
    return hits, cost


async def repeats(db: Database, since: datetime, until: datetime, ttl_s: float, *, postgres: bool
                  ) -> Recommendation | None:
    where = "ts >= $1 AND ts < $2 AND fingerprint IS NOT NULL AND NOT cache_hit"
    async with db.reader() as tx:
        total = await tx.fetchrow(f"SELECT count(*) AS n FROM ledger_requests WHERE {where}", since, until)
        rows = await tx.fetch(
            f"SELECT coalesce(team_id, key_id, '') AS scope, fingerprint, ts, cost_usd, {OK} AS ok "
            f"FROM ledger_requests WHERE {where} AND fingerprint IN (SELECT fingerprint FROM ledger_requests "
            f"WHERE {where} GROUP BY fingerprint HAVING count(*) > 1) ORDER BY ts", since, until)
    seen = (Seen(r["scope"], r["fingerprint"], _instant(r["ts"]), bool(r["ok"]),
                 ZERO if r["cost_usd"] is None else Decimal(r["cost_usd"])) for r in rows)
    hits, cost = would_hit(seen, ttl_s)
    requests = int(total["n"]) if total else 0
    if hits == 0:
        return None
    share = hits / requests
    return Recommendation(
        "cache", "response cache", cost,
        f"{share:.1%} of requests repeated an earlier one exactly within {ttl_s:g} s: a response cache would "
        f"have answered them, saving {cost:.2f} USD.",
        {"requests": requests, "repeats": hits, "share": round(share, 4), "ttl_s": ttl_s})


def _instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


# Idle keys


@dataclass(frozen=True, slots=True)
class Activity:
    last_day: date
    spent: Decimal


async def key_activity(db: Database, since: date, *, postgres: bool) -> dict[str, Activity]:
    """Per key, from the daily rollup: its last day with a request, and its spend since `since`."""
    async with db.reader() as tx:
        if postgres:
            rows = await tx.fetch("SELECT key_id, max(day) AS last_day, sum(cost_usd) AS cost FROM ledger_daily "
                                  "WHERE day >= $1 AND key_id <> '' AND requests > 0 GROUP BY key_id", since)
        else:
            rows = await tx.fetch("SELECT key_id, day AS last_day, cost_usd AS cost FROM ledger_daily "
                                  "WHERE day >= $1 AND key_id <> '' AND requests > 0", since.isoformat())
    found: dict[str, Activity] = {}
    for r in rows:
        day = r["last_day"] if isinstance(r["last_day"], date) else date.fromisoformat(r["last_day"])
        old = found.get(r["key_id"])
        spent = Decimal(str(r["cost"]))
        found[r["key_id"]] = Activity(day, spent) if old is None else Activity(max(old.last_day, day),
                                                                               old.spent + spent)
    return found


def idle_keys(activity: dict[str, Activity], keys: Iterable[LiveKey], today: date, c: Criteria
              ) -> list[Recommendation]:
    quiet_since = today - timedelta(weeks=c.idle_weeks)
    found = []
    for key in keys:
        seen = activity.get(key.id)
        if seen is None or seen.spent <= 0 or seen.last_day >= quiet_since:
            continue
        found.append(Recommendation(
            "idle_key", key.id, seen.spent,
            f"Key {key.name or key.id} spent {seen.spent:.2f} USD but has sent nothing since {seen.last_day}: "
            "revoke it if nobody needs it.",
            {"key_id": key.id, "name": key.name, "last_request_day": seen.last_day.isoformat(),
             "budget_usd": None if key.budget_usd is None else str(key.budget_usd),
             "budget_period": key.budget_period}))
    return found
