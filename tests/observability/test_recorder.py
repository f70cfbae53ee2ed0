"""What one finished request becomes in the metrics and the log: bounded labels, budgets, errors, levels."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.types import BudgetUsage, Endpoint, Principal, Usage
from gateway.observability.bridge import StatsBridge
from gateway.observability.labels import LabelPolicy
from gateway.observability.logs import RequestLogRecorder
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.recorder import MetricsRecorder
from gateway.pipeline.record import RequestRecord

DEPLOYMENT = Deployment(provider="openai", base_url="http://127.0.0.1:9/v1", model="up-model", id="gpt/0")
TEAM = Principal(key_id="key_42", key_prefix="sk-abc", team_id="research")


def finished(**fields: Any) -> RequestRecord:
    record = RequestRecord(
        "req_1", Endpoint.CHAT, Endpoint.CHAT.value, started=100.0, finished=100.501, upstream_started=100.002,
        first_byte_at=100.5, key_id=TEAM.key_id, key_prefix=TEAM.key_prefix, team_id=TEAM.team_id, model="gpt",
        deployment=DEPLOYMENT, attempts=1, status=200,
    )
    return record._replace(**fields)


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_model_labels_stay_within_the_config() -> None:
    labels = LabelPolicy(["gpt", "fake/*", "alias-of-gpt"])
    assert labels.model("gpt") == "gpt"
    assert labels.model("alias-of-gpt") == "alias-of-gpt"
    assert labels.model("fake/anything-at-all") == "fake/*"
    assert labels.model("invented-by-a-client") == "other"
    assert labels.model("") == "none"


def test_a_served_request_counts_tokens_cost_and_latency_by_team() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    recorder = MetricsRecorder(metrics, LabelPolicy(["gpt"]))
    recorder.record(finished(usage=Usage(10, 20, cached_tokens=4), cost_usd=Decimal("0.0125")))
    base = {"model": "gpt", "provider": "openai", "team": "research"}
    assert sample(metrics, "llm_gateway_requests_total", route="chat/completions", status_class="2xx",
                  stream="false", **base) == 1  # fmt: skip
    assert sample(metrics, "llm_gateway_tokens_total", type="prompt", **base) == 10
    assert sample(metrics, "llm_gateway_tokens_total", type="completion", **base) == 20
    assert sample(metrics, "llm_gateway_tokens_total", type="cached_prompt", **base) == 4
    assert sample(metrics, "llm_gateway_cost_usd_total", **base) == pytest.approx(0.0125)
    duration = sample(metrics, "llm_gateway_request_duration_seconds_sum", route="chat/completions",
                      model="gpt", provider="openai")  # fmt: skip
    assert duration == pytest.approx(0.501)
    assert sample(metrics, "llm_gateway_upstream_latency_seconds_sum", model="gpt", provider="openai") == (
        pytest.approx(0.498)
    )
    # Added: 2 ms before the upstream call and 1 ms after its answer.
    assert sample(metrics, "llm_gateway_overhead_seconds_sum", route="chat/completions", stream="false") == (
        pytest.approx(0.003)
    )
    # No key ids unless an operator opts in.
    assert b"key_42" not in generate_latest(metrics.registry)
    assert metrics.key_requests is None


def test_a_retried_request_adds_no_overhead_sample_and_unknown_prices_are_counted() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    MetricsRecorder(metrics, LabelPolicy(["gpt"])).record(finished(attempts=2, usage=Usage(1, 1)))
    assert sample(metrics, "llm_gateway_overhead_seconds_count", route="chat/completions", stream="false") == 0
    assert sample(metrics, "llm_gateway_unpriced_requests_total", model="gpt", provider="openai") == 1


def test_retries_and_fallbacks_come_from_the_attempts_made() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    recorder = MetricsRecorder(metrics, LabelPolicy(["gpt"]))
    recorder.record(finished(attempts=3, attempted=["gpt/0", "gpt/1", "small/0"], fallback=True))
    recorder.record(finished(attempts=1, attempted=["gpt/0"]))
    assert sample(metrics, "llm_gateway_retries_total", deployment="gpt/0") == 1
    assert sample(metrics, "llm_gateway_retries_total", deployment="gpt/1") == 1
    assert sample(metrics, "llm_gateway_retries_total", deployment="small/0") is None
    assert sample(metrics, "llm_gateway_fallbacks_total", model="gpt") == 1


def test_errors_are_counted_by_status_and_bounded_type() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    recorder = MetricsRecorder(metrics, LabelPolicy(["gpt"]))
    recorder.record(finished(status=504, error_type="server_error"))
    recorder.record(finished(stream=True, error_type="server_error"))  # failed after the stream began
    recorder.record(finished(status=400, error_type="some-upstream-invention"))
    recorder.record(finished(status=499, cancelled=True))
    errors = "llm_gateway_errors_total"
    common = {"route": "chat/completions", "model": "gpt", "provider": "openai"}
    assert sample(metrics, errors, status="504", type="server_error", **common) == 1
    assert sample(metrics, errors, status="in_stream", type="server_error", **common) == 1
    assert sample(metrics, errors, status="400", type="other", **common) == 1
    assert sample(metrics, errors, status="499", type="cancelled", **common) == 1


def test_budgets_become_gauges_by_team_and_by_key_only_when_asked() -> None:
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    budgets = [
        BudgetUsage("team", "research", Decimal("80"), Decimal("100"), start, end),
        BudgetUsage("key", "key_42", Decimal("120"), Decimal("100"), start, end),
    ]
    plain = GatewayMetrics(CollectorRegistry())
    MetricsRecorder(plain, LabelPolicy(["gpt"])).record(finished(budgets=budgets))
    assert sample(plain, "llm_gateway_team_budget_spent_usd", team="research") == 80
    assert sample(plain, "llm_gateway_team_budget_limit_usd", team="research") == 100
    assert sample(plain, "llm_gateway_team_budget_remaining_usd", team="research") == 20
    assert sample(plain, "llm_gateway_team_budget_period_end_timestamp_seconds", team="research") == end.timestamp()
    # The next request after the budget was raised and the period rolled over: every gauge follows.
    later = datetime(2027, 1, 1, tzinfo=UTC)
    raised = BudgetUsage("team", "research", Decimal("5"), Decimal("150"), end, later)
    MetricsRecorder(plain, LabelPolicy(["gpt"])).record(finished(budgets=[raised]))
    assert sample(plain, "llm_gateway_team_budget_spent_usd", team="research") == 5
    assert sample(plain, "llm_gateway_team_budget_limit_usd", team="research") == 150
    assert sample(plain, "llm_gateway_team_budget_remaining_usd", team="research") == 145
    assert sample(plain, "llm_gateway_team_budget_period_start_timestamp_seconds", team="research") == end.timestamp()
    assert sample(plain, "llm_gateway_team_budget_period_end_timestamp_seconds", team="research") == later.timestamp()

    opted = GatewayMetrics(CollectorRegistry(), key_labels=True)
    MetricsRecorder(opted, LabelPolicy(["gpt"], key_labels=True)).record(finished(budgets=budgets))
    assert sample(opted, "llm_gateway_key_budget_spent_usd", key="key_42") == 120
    assert sample(opted, "llm_gateway_key_budget_remaining_usd", key="key_42") == 0  # never below zero
    assert sample(opted, "llm_gateway_key_requests_total", key="key_42", status_class="2xx") == 1


def test_other_stages_report_through_bounded_helpers() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    metrics.limit_rejected("rpm")
    metrics.limit_rejected("made-up")
    metrics.configured(["gpt/0", "gpt/1"], ["gpt"])
    metrics.circuit_state("gpt/0", "open")
    metrics.ledger_queue_depth(7)
    metrics.ledger_spilled(3)
    metrics.ledger_replayed(2)
    metrics.cache_lookup("gpt", hit=True)
    metrics.limiter_backend_error("fail_open")
    metrics.plugin_failed("pii", "before")
    metrics.guardrail_decision("pii", "email", "masked", "request")
    assert sample(metrics, "llm_gateway_limit_rejections_total", kind="rpm") == 1
    assert sample(metrics, "llm_gateway_limit_rejections_total", kind="other") == 1
    assert sample(metrics, "llm_gateway_circuit_state", deployment="gpt/0") == 2
    assert sample(metrics, "llm_gateway_circuit_transitions_total", deployment="gpt/0", state="open") == 1
    assert sample(metrics, "llm_gateway_circuit_state", deployment="gpt/1") == 0  # there from the start
    # Bounded label values start at zero, so the first increase shows in rate() and increase().
    assert sample(metrics, "llm_gateway_circuit_transitions_total", deployment="gpt/1", state="open") == 0
    assert sample(metrics, "llm_gateway_retries_total", deployment="gpt/1") == 0
    assert sample(metrics, "llm_gateway_fallbacks_total", model="gpt") == 0
    assert sample(metrics, "llm_gateway_budget_alert_deliveries_total", scope="team", outcome="failed") == 0
    assert sample(metrics, "llm_gateway_limiter_backend_errors_total", outcome="fail_closed") == 0
    assert sample(metrics, "llm_gateway_ledger_queue_depth") == 7
    assert sample(metrics, "llm_gateway_ledger_spilled_rows_total") == 3
    assert sample(metrics, "llm_gateway_ledger_replayed_rows_total") == 2
    assert sample(metrics, "llm_gateway_cache_lookups_total", model="gpt", result="hit") == 1
    assert sample(metrics, "llm_gateway_limiter_backend_errors_total", outcome="fail_open") == 1
    assert sample(metrics, "llm_gateway_plugin_failures_total", plugin="pii", hook="before") == 1
    assert sample(metrics, "llm_gateway_guardrail_decisions_total", plugin="pii", kind="email", action="masked",
                  where="request") == 1  # fmt: skip


def test_log_level_follows_the_outcome(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.gateway.request")
    logger.setLevel(logging.WARNING)
    recorder = RequestLogRecorder(logger=logger)
    with caplog.at_level(logging.WARNING, logger="test.gateway.request"):
        recorder.record(finished())
        recorder.record(finished(status=502, error_type="server_error"))
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.fields["status"] == 502  # type: ignore[attr-defined]
    assert "messages" not in record.fields  # type: ignore[attr-defined]


def test_the_limiters_and_ledgers_own_counters_become_metrics(tmp_path: Path) -> None:
    from gateway.accounting.ledger import build_ledger
    from gateway.accounting.limits.limiter import LimiterStats

    class Limiter:
        stats = LimiterStats()

    ledger = build_ledger(Settings(data_dir=str(tmp_path)))
    metrics = GatewayMetrics(CollectorRegistry())
    bridge = StatsBridge(metrics, limiter=Limiter(), ledger=ledger)
    Limiter.stats.refused["tokens"] += 2
    Limiter.stats.refused["budget"] += 1
    Limiter.stats.fallback_admissions += 3
    Limiter.stats.redis_down = True
    ledger.stats.written += 5
    ledger.stats.spilled += 4
    ledger.stats.rejected += 2
    ledger.stats.lost += 1
    bridge.sample()
    Limiter.stats.refused["tokens"] += 1
    ledger.stats.replayed += 4
    bridge.sample()
    bridge.sample()  # nothing grew: nothing added
    assert sample(metrics, "llm_gateway_limit_rejections_total", kind="tpm") == 3
    assert sample(metrics, "llm_gateway_limit_rejections_total", kind="budget") == 1
    assert sample(metrics, "llm_gateway_limiter_backend_errors_total", outcome="fail_open") == 3
    assert sample(metrics, "llm_gateway_limiter_store_down") == 1
    assert sample(metrics, "llm_gateway_ledger_written_rows_total") == 5
    assert sample(metrics, "llm_gateway_ledger_spilled_rows_total") == 4
    assert sample(metrics, "llm_gateway_ledger_replayed_rows_total") == 4
    assert sample(metrics, "llm_gateway_ledger_rejected_rows_total") == 2
    assert sample(metrics, "llm_gateway_ledger_lost_rows_total") == 1
    assert sample(metrics, "llm_gateway_ledger_queue_depth") == 0
