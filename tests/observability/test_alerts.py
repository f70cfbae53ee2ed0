"""Budget alerts against a real webhook receiver on loopback, fed `BudgetUsage` as the limiter gives it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis.asyncio
from prometheus_client import CollectorRegistry

from gateway.core.types import BudgetUsage
from gateway.observability.alerts.budget import BudgetAlerter
from gateway.observability.alerts.claims import Claims, FileClaims, RedisClaims
from gateway.observability.metrics import GatewayMetrics
from tests.observability.receiver import Receiver

# Claims expire after their period, so the periods are around now.
_START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
THIS_PERIOD = (_START, _START + timedelta(days=30))
NEXT_PERIOD = (_START + timedelta(days=30), _START + timedelta(days=60))


def usage(
    spent: str, period: tuple[datetime, datetime] = THIS_PERIOD, scope: str = "team", id: str = "research"
) -> BudgetUsage:
    return BudgetUsage(scope, id, Decimal(spent), Decimal("100"), period[0], period[1])


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.close()


def alerter(receiver: Receiver, claims: Claims, **options: object) -> BudgetAlerter:
    settings: dict[str, object] = {"retry_base_s": 0.01, "max_attempts": 4, **options}
    return BudgetAlerter(webhooks=[receiver.url], claims=claims, **settings)  # type: ignore[arg-type]


def deliveries(metrics: GatewayMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "llm_gateway_budget_alert_deliveries_total", {"scope": "team", "outcome": outcome}
    )
    return value or 0.0


async def test_each_threshold_is_posted_once_per_period(receiver: Receiver, tmp_path: Path) -> None:
    a = alerter(receiver, FileClaims(tmp_path))
    await a.start()
    try:
        for spent in ("10", "49.99", "50", "60", "79"):
            a.check(usage(spent))
        await a.drain()
        assert [m["budget_alert"]["threshold_pct"] for m in receiver.received] == [50]

        a.check(usage("85"))
        a.check(usage("90"))
        await a.drain()
        assert [m["budget_alert"]["threshold_pct"] for m in receiver.received] == [50, 80]

        # A new period starts the thresholds again; a jump over several posts only the highest.
        a.check(usage("120", NEXT_PERIOD))
        a.check(usage("130", NEXT_PERIOD))
        await a.drain()
        assert [m["budget_alert"]["threshold_pct"] for m in receiver.received] == [50, 80, 100]
    finally:
        await a.stop()

    first = receiver.received[0]
    # Slack's incoming webhooks take {"text": ...}; the facts come structured as well.
    assert "research" in first["text"] and "50%" in first["text"] and "$50.00 of $100.00" in first["text"]
    assert first["budget_alert"] == {
        "scope": "team", "id": "research", "threshold_pct": 50, "spent_usd": "50", "budget_usd": "100",
        "period_start": THIS_PERIOD[0].isoformat(), "period_end": THIS_PERIOD[1].isoformat(),
    }  # fmt: skip


async def test_a_restart_does_not_post_again(receiver: Receiver, tmp_path: Path) -> None:
    before = alerter(receiver, FileClaims(tmp_path))
    await before.start()
    before.check(usage("55"))
    await before.drain()
    await before.stop()

    # The next process (or another worker) shares the data directory, not the memory.
    after = alerter(receiver, FileClaims(tmp_path))
    await after.start()
    try:
        after.check(usage("58"))
        after.check(usage("81"))
        await after.drain()
    finally:
        await after.stop()
    assert [m["budget_alert"]["threshold_pct"] for m in receiver.received] == [50, 80]


async def test_replicas_sharing_redis_post_once(receiver: Receiver) -> None:
    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"test-alerts-{os.getpid()}-{os.urandom(4).hex()}"
    replicas = [alerter(receiver, RedisClaims(client, prefix)) for _ in range(3)]
    try:
        for replica in replicas:
            await replica.start()
        for replica in replicas:
            replica.check(usage("100", id="ops"))
        for replica in replicas:
            await replica.drain()
        assert len(receiver.received) == 1
        assert receiver.received[0]["budget_alert"]["id"] == "ops"
        keys = [key async for key in client.scan_iter(f"{prefix}:alert:*")]
        assert len(keys) == 1
        # The claim outlives its period by a day, not forever.
        assert await client.ttl(keys[0]) > 0
    finally:
        for replica in replicas:
            await replica.stop()
        async for key in client.scan_iter(f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()


async def test_a_failing_webhook_is_retried_until_it_answers(receiver: Receiver, tmp_path: Path) -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    receiver.script.extend([500, 503, 502])
    a = alerter(receiver, FileClaims(tmp_path), metrics=metrics, max_attempts=5)
    await a.start()
    try:
        a.check(usage("80"))
        await a.drain()
    finally:
        await a.stop()
    assert [m["budget_alert"]["threshold_pct"] for m in receiver.received] == [80]
    assert deliveries(metrics, "retried") == 3
    assert deliveries(metrics, "sent") == 1


async def test_an_undelivered_alert_is_tried_again_on_the_next_crossing(receiver: Receiver, tmp_path: Path) -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    receiver.script.extend([500, 500])
    a = alerter(receiver, FileClaims(tmp_path), metrics=metrics, max_attempts=2)
    await a.start()
    try:
        a.check(usage("50"))
        await a.drain()
        assert receiver.received == []
        assert deliveries(metrics, "failed") == 1
        # The claim was given back: the next request over the threshold brings the alert back.
        a.check(usage("51"))
        await a.drain()
    finally:
        await a.stop()
    assert [m["budget_alert"]["threshold_pct"] for m in receiver.received] == [50]


async def test_a_full_queue_drops_instead_of_waiting(receiver: Receiver, tmp_path: Path) -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    a = alerter(receiver, FileClaims(tmp_path), metrics=metrics, queue_size=1)
    # Not started: nothing consumes the queue, as when the webhook is slow.
    a.check(usage("50", id="a"))
    a.check(usage("50", id="b"))
    assert a.queue.qsize() == 1
    assert deliveries(metrics, "dropped") == 1
    await a.start()
    try:
        await a.drain()
        a.check(usage("50", id="b"))  # dropped, so not remembered: it comes back
        await a.drain()
    finally:
        await a.stop()
    assert sorted(m["budget_alert"]["id"] for m in receiver.received) == ["a", "b"]


async def test_scopes_and_budgets_without_a_cap_are_left_alone(receiver: Receiver, tmp_path: Path) -> None:
    a = alerter(receiver, FileClaims(tmp_path), scopes=["team"])
    await a.start()
    try:
        a.check(usage("90", scope="key", id="key_1"))
        a.check(BudgetUsage("team", "free", Decimal("5"), Decimal("0")))
        a.check(usage("90", id="research"))
        await a.drain()
    finally:
        await a.stop()
    assert [m["budget_alert"]["id"] for m in receiver.received] == ["research"]
