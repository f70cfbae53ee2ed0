"""Every metric the gateway exports, in one place: names, units, types and bounded labels.

The other stages (limits, ledger, router, cache) report through the small methods at the
bottom instead of touching prometheus_client, so names and label sets live only here.

Names follow Prometheus conventions: one `llm_gateway_` prefix, base units as suffixes
(`_seconds`, `_usd`), counters ending in `_total`. With several workers every value lives in
prometheus_client's multiprocess files; gauges then say how the workers' values combine.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from gateway.core.types import BudgetUsage
from gateway.observability.labels import bounded
from gateway.observability.teams import TeamNames

PREFIX = "llm_gateway"

# Whole requests run up to the SDKs' 600 s default timeout.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
# What the gateway itself adds is meant to be around a millisecond.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

LIMIT_KINDS = frozenset({"rpm", "tpm", "parallel", "budget"})
LIMITER_OUTCOMES = frozenset({"fail_open", "fail_closed"})
# A circuit breaker's state (gateway/routing/breaker.py's values) as a number: worse is higher.
CIRCUIT_LEVELS = {"closed": 0, "half-open": 1, "open": 2}
ALERT_OUTCOMES = frozenset({"sent", "retried", "failed", "dropped"})
ALERT_SCOPES = frozenset({"key", "team"})
# The error `type`s the gateway and OpenAI-compatible upstreams use; others are "other".
ERROR_TYPES = frozenset(
    {
        "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
        "rate_limit_error", "requests", "tokens", "insufficient_quota", "server_error", "api_error",
        "timeout", "overloaded_error", "request_forbidden", "cancelled",
    }
)  # fmt: skip


class GatewayMetrics:
    """The metric objects, registered on `registry` (a fresh one per app, never the global)."""

    def __init__(self, registry: CollectorRegistry, *, key_labels: bool = False) -> None:
        self.registry = registry
        r = registry
        p = PREFIX

        # Traffic. `route` is the OpenAI path, `status_class` 2xx/4xx/5xx.
        self.requests = Counter(
            f"{p}_requests_total", "Requests finished, by outcome.",
            ["route", "model", "provider", "team", "status_class", "stream"], registry=r,
        )
        self.errors = Counter(
            f"{p}_errors_total",
            "Requests that failed, by HTTP status (`in_stream` when a started stream failed) and error type.",
            ["route", "model", "provider", "status", "type"], registry=r,
        )
        self.inflight = Gauge(
            f"{p}_inflight_requests", "Requests being served now.", registry=r, multiprocess_mode="livesum"
        )
        self.workers = Gauge(
            f"{p}_workers", "Worker processes serving.", registry=r, multiprocess_mode="livesum"
        )

        # Latency.
        self.request_duration = Histogram(
            f"{p}_request_duration_seconds", "From the request's arrival to its last byte (or its failure).",
            ["route", "model", "provider"], buckets=DURATION_BUCKETS, registry=r,
        )
        self.ttft = Histogram(
            f"{p}_time_to_first_token_seconds", "Streams: from the request's arrival to the first upstream chunk.",
            ["model", "provider"], buckets=TTFT_BUCKETS, registry=r,
        )
        self.upstream_latency = Histogram(
            f"{p}_upstream_latency_seconds",
            "The serving upstream attempt: to the whole response (unary) or to its first chunk (streams).",
            ["model", "provider"], buckets=DURATION_BUCKETS, registry=r,
        )
        self.overhead = Histogram(
            f"{p}_overhead_seconds",
            "Time the gateway itself added to a request served in one attempt (auth, limits, routing, relay).",
            ["route", "stream"], buckets=OVERHEAD_BUCKETS, registry=r,
        )

        # Usage and money.
        self.tokens = Counter(
            f"{p}_tokens_total", "Tokens used; `type` is prompt, completion or cached_prompt (within prompt).",
            ["model", "provider", "team", "type"], registry=r,
        )
        self.cost = Counter(
            f"{p}_cost_usd_total", "What requests cost, in US dollars.", ["model", "provider", "team"], registry=r,
        )
        # Requests to a `complexity` model, by the tier the router chose (gateway/routing/complexity.py).
        self.complexity_requests = Counter(
            f"{p}_complexity_requests_total", "Requests to a complexity model, by tier.", ["model", "tier"], registry=r,
        )
        self.complexity_cost = Counter(
            f"{p}_complexity_cost_usd_total", "What requests to a complexity model cost, by tier, in US dollars.",
            ["model", "tier"], registry=r,
        )
        # The same requests priced at the top tier (same tokens): what routing saved, against `complexity_cost`.
        self.complexity_top_tier_cost = Counter(
            f"{p}_complexity_top_tier_cost_usd_total",
            "What the same requests to a complexity model would have cost on its top tier (the same tokens at "
            "the top tier's price), by the tier that served them, in US dollars.",
            ["model", "tier"], registry=r,
        )
        self.complexity_classifier = Counter(
            f"{p}_complexity_classifier_total",
            "Requests to a complexity model with an embedding classifier, by whether its reading was used "
            "(`used`) or the features alone decided (`features_only`: no text, or the embeddings failed or were slow).",
            ["model", "outcome"], registry=r,
        )
        # Budget forecasts (gateway/observability/alerts/forecast.py): teams, and keys with metrics_key_labels.
        self.budget_projected = Gauge(
            f"{p}_budget_projected_usd", "Projected spend at the end of the budget period, in US dollars.",
            ["scope", "id"], registry=r,
        )
        self.budget_projected_overrun = Gauge(
            f"{p}_budget_projected_overrun", "1 when the budget is projected to run out before its period ends.",
            ["scope", "id"], registry=r,
        )
        self.unpriced = Counter(
            f"{p}_unpriced_requests_total", "Requests with usage but no known price (cost not counted).",
            ["model", "provider"], registry=r,
        )
        self.team_budget_spent = Gauge(
            f"{p}_team_budget_spent_usd", "A team's spend in its current budget period.",
            ["team"], registry=r, multiprocess_mode="mostrecent",
        )
        self.team_budget_limit = Gauge(
            f"{p}_team_budget_limit_usd", "A team's budget for the period.",
            ["team"], registry=r, multiprocess_mode="mostrecent",
        )
        self.team_budget_remaining = Gauge(
            f"{p}_team_budget_remaining_usd", "What is left of a team's budget this period (never below 0).",
            ["team"], registry=r, multiprocess_mode="mostrecent",
        )
        self.team_budget_period_end = Gauge(
            f"{p}_team_budget_period_end_timestamp_seconds", "When a team's budget period ends (Unix time).",
            ["team"], registry=r, multiprocess_mode="mostrecent",
        )
        self.team_budget_period_start = Gauge(
            f"{p}_team_budget_period_start_timestamp_seconds", "When a team's budget period began (Unix time).",
            ["team"], registry=r, multiprocess_mode="mostrecent",
        )

        # Limits.
        self.limit_rejections = Counter(
            f"{p}_limit_rejections_total", "Requests refused by a key's or team's limit, by kind.",
            ["kind"], registry=r,
        )
        self.limiter_backend_errors = Counter(
            f"{p}_limiter_backend_errors_total",
            "Requests whose limits the shared store could not check, by what the gateway did: "
            "fail_open (checked in-process instead) or fail_closed (refused with 503).",
            ["outcome"], registry=r,
        )
        self.limiter_store_down = Gauge(
            f"{p}_limiter_store_down", "1 while the limiter's shared store (Redis) is unreachable.",
            registry=r, multiprocess_mode="livemax",
        )

        # Ledger.
        self.ledger_queue_rows = Gauge(
            f"{p}_ledger_queue_depth", "Ledger rows waiting to be written.", registry=r, multiprocess_mode="livesum"
        )
        self.ledger_written_rows = Counter(f"{p}_ledger_written_rows_total", "Ledger rows written.", registry=r)
        self.ledger_spilled_rows = Counter(
            f"{p}_ledger_spilled_rows_total", "Ledger rows spilled to local files while the store was away.",
            registry=r,
        )
        self.ledger_replayed_rows = Counter(
            f"{p}_ledger_replayed_rows_total", "Spilled ledger rows written to the store later.", registry=r
        )
        self.ledger_rejected_rows = Counter(
            f"{p}_ledger_rejected_rows_total",
            "Ledger rows the database refused for good, set aside in `.rejected` files under the data directory.",
            registry=r,
        )
        self.ledger_lost_rows = Counter(
            f"{p}_ledger_lost_rows_total",
            "Ledger rows neither written nor spilled (the spill file itself failed, e.g. a full disk).",
            registry=r,
        )

        # Routing. `deployment` is a configured deployment id, so bounded.
        self.retries = Counter(
            f"{p}_retries_total", "Upstream attempts that failed and were followed by another, by deployment.",
            ["deployment"], registry=r,
        )
        self.fallbacks = Counter(
            f"{p}_fallbacks_total", "Requests served by a fallback model group, by the model asked for.",
            ["model"], registry=r,
        )
        self.circuit_states = Gauge(
            f"{p}_circuit_state", "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open (worst worker).",
            ["deployment"], registry=r, multiprocess_mode="livemax",
        )
        self.circuit_transitions = Counter(
            f"{p}_circuit_transitions_total", "Circuit breaker changes, by the state entered.",
            ["deployment", "state"], registry=r,
        )

        # Cache (counted once the cache exists).
        self.cache_lookups = Counter(
            f"{p}_cache_lookups_total", "Response cache lookups, by result (hit or miss).",
            ["model", "result"], registry=r,
        )

        # Plugins (gateway/plugins/). `plugin` is a configured entry's id, so bounded.
        self.guardrail_decisions = Counter(
            f"{p}_guardrail_decisions_total",
            "Guardrail decisions, by plugin, what was found, what was done and where (request or response).",
            ["plugin", "kind", "action", "where"], registry=r,
        )
        self.plugin_failures = Counter(
            f"{p}_plugin_failures_total", "Plugin hooks that raised, by plugin and hook.",
            ["plugin", "hook"], registry=r,
        )

        # Budget alerts.
        self.alert_deliveries = Counter(
            f"{p}_budget_alert_deliveries_total", "Budget alert webhook deliveries, by outcome.",
            ["scope", "outcome"], registry=r,
        )

        # Fixed label values start at zero (see `configured`).
        for kind in LIMIT_KINDS:
            self.limit_rejections.labels(kind)
        for outcome in LIMITER_OUTCOMES:
            self.limiter_backend_errors.labels(outcome)
        for scope in ALERT_SCOPES:
            for outcome in ALERT_OUTCOMES:
                self.alert_deliveries.labels(scope, outcome)

        # Team names, joined onto the `team` label by queries (read from the key store at scrape time).
        self.team_names = TeamNames()

        # The labelled budget gauges of each team and key seen (budget() runs on every budgeted request).
        self._team_gauges: dict[str, _BudgetGauges] = {}
        self._key_gauges: dict[str, _BudgetGauges] = {}

        # Per-key series, only when an operator opts in.
        self.key_requests: Counter | None = None
        self.key_cost: Counter | None = None
        self.key_budget_spent: Gauge | None = None
        self.key_budget_remaining: Gauge | None = None
        if key_labels:
            self.key_requests = Counter(
                f"{p}_key_requests_total", "Requests by key id.", ["key", "status_class"], registry=r
            )
            self.key_cost = Counter(f"{p}_key_cost_usd_total", "Cost by key id, in US dollars.", ["key"], registry=r)
            self.key_budget_spent = Gauge(
                f"{p}_key_budget_spent_usd", "A key's spend in its current budget period.",
                ["key"], registry=r, multiprocess_mode="mostrecent",
            )
            self.key_budget_remaining = Gauge(
                f"{p}_key_budget_remaining_usd", "What is left of a key's budget this period.",
                ["key"], registry=r, multiprocess_mode="mostrecent",
            )

    def all(self) -> Iterator[MetricWrapperBase]:
        for value in vars(self).values():
            if isinstance(value, MetricWrapperBase):
                yield value

    # What the other stages call.

    def limit_rejected(self, kind: str, count: int = 1) -> None:
        self.limit_rejections.labels(bounded(kind, LIMIT_KINDS)).inc(count)

    def limiter_backend_error(self, outcome: str, count: int = 1) -> None:
        self.limiter_backend_errors.labels(bounded(outcome, LIMITER_OUTCOMES)).inc(count)

    def ledger_queue_depth(self, rows: int) -> None:
        self.ledger_queue_rows.set(rows)

    def ledger_written(self, rows: int) -> None:
        self.ledger_written_rows.inc(rows)

    def ledger_spilled(self, rows: int) -> None:
        self.ledger_spilled_rows.inc(rows)

    def ledger_replayed(self, rows: int) -> None:
        self.ledger_replayed_rows.inc(rows)

    def ledger_rejected(self, rows: int) -> None:
        self.ledger_rejected_rows.inc(rows)

    def ledger_lost(self, rows: int) -> None:
        self.ledger_lost_rows.inc(rows)

    def configured(self, deployments: Iterable[str], models: Iterable[str]) -> None:
        """Series whose label values the config bounds start at zero, so that their first increase shows
        in `rate()` and `increase()` (a series born at 1 has no increase), and every deployment's circuit
        shows as closed, not only those that changed."""
        for deployment in deployments:
            self.circuit_states.labels(deployment).set(CIRCUIT_LEVELS["closed"])
            self.retries.labels(deployment)
            for state in CIRCUIT_LEVELS:
                self.circuit_transitions.labels(deployment, state)
        for model in models:
            self.fallbacks.labels(model)

    def circuit_state(self, deployment: str, state: str) -> None:
        """A breaker entered `state` ("closed", "half-open" or "open"); routing's `CircuitListener`."""
        level = CIRCUIT_LEVELS.get(str(state))
        if level is None:
            return
        self.circuit_states.labels(deployment).set(level)
        self.circuit_transitions.labels(deployment, str(state)).inc()

    def cache_lookup(self, model: str, hit: bool) -> None:
        """`model` must already be a bounded label (`LabelPolicy.model`)."""
        self.cache_lookups.labels(model, "hit" if hit else "miss").inc()

    def guardrail_decision(self, plugin: str, kind: str, action: str, where: str) -> None:
        """`plugin` is a configured id; `kind` and `action` come from the plugins' code or config."""
        self.guardrail_decisions.labels(plugin, kind, action, bounded(where, frozenset({"request", "response"}))).inc()

    def plugin_failed(self, plugin: str, hook: str) -> None:
        self.plugin_failures.labels(plugin, hook).inc()


    def alert_delivery(self, scope: str, outcome: str) -> None:
        self.alert_deliveries.labels(bounded(scope, ALERT_SCOPES), bounded(outcome, ALERT_OUTCOMES)).inc()

    def budget(self, usage: BudgetUsage) -> None:
        """Every budgeted request reports its key's and team's budget: the labelled gauges are looked
        up once per team or key, and the budget and period bounds set only when they change."""
        spent = float(usage.spent_usd)
        remaining = float(max(Decimal(0), usage.budget_usd - usage.spent_usd))
        if usage.scope == "team":
            team = usage.id
            gauges = self._team_gauges.get(team)
            if gauges is None:
                gauges = self._team_gauges[team] = _BudgetGauges(
                    self.team_budget_spent.labels(team), self.team_budget_remaining.labels(team)
                )
            static = (usage.budget_usd, usage.period_start, usage.period_end)
            if gauges.static != static:
                gauges.static = static
                self.team_budget_limit.labels(team).set(float(usage.budget_usd))
                if usage.period_start is not None:
                    self.team_budget_period_start.labels(team).set(usage.period_start.timestamp())
                if usage.period_end is not None:
                    self.team_budget_period_end.labels(team).set(usage.period_end.timestamp())
        elif usage.scope == "key" and self.key_budget_spent is not None and self.key_budget_remaining is not None:
            gauges = self._key_gauges.get(usage.id)
            if gauges is None:
                gauges = self._key_gauges[usage.id] = _BudgetGauges(
                    self.key_budget_spent.labels(usage.id), self.key_budget_remaining.labels(usage.id)
                )
        else:
            return
        gauges.spent.set(spent)
        gauges.remaining.set(remaining)


@dataclass(slots=True)
class _BudgetGauges:
    spent: Gauge
    remaining: Gauge
    # The budget and period bounds last set: (budget, start, end).
    static: tuple[object, ...] | None = None


def exported_names(metrics: GatewayMetrics) -> set[str]:
    """The sample names a scrape can carry for these metrics (`_total`, `_bucket`, `_sum`, `_count`)."""
    names: set[str] = set()
    collectors: list[MetricWrapperBase | TeamNames] = [*metrics.all(), metrics.team_names]
    for metric in collectors:
        for family in metric.describe():
            if family.type == "counter":
                names.add(family.name + "_total")
            elif family.type == "histogram":
                names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
            else:
                names.add(family.name)
    return names
