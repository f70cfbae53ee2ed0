"""Each strategy picks what it should, from the signals the router keeps."""

from __future__ import annotations

from collections import Counter
from typing import Any

from gateway.core.errors import UpstreamError
from gateway.core.types import ReportedLoad, Usage
from gateway.routing.latency import LatencyStats
from tests.routing.harness import FakeClock, Script, drive, request, router

THREE = [{"id": "d1"}, {"id": "d2"}, {"id": "d3"}]


def group(
    strategy: str, deployments: list[dict[str, Any]] | None = None, **extra: Any
) -> list[dict[str, Any]]:
    return [{"name": "g", "strategy": strategy, "deployments": deployments or [dict(d) for d in THREE], **extra}]


async def picks(strategy: str, n: int = 1, **kwargs: object) -> list[str]:
    clock = FakeClock()
    r = router(group(strategy), clock, **kwargs)  # type: ignore[arg-type]
    return [(await drive(r, request("g"), Script({}), clock)).tried[0] for _ in range(n)]


async def test_priority_takes_the_first_healthy_in_order() -> None:
    clock = FakeClock()
    r = router(group("priority"), clock, retries=0, breaker={"failures": 1, "min_requests": 1, "cooldown_s": 60})
    boom = UpstreamError("boom", status=502, type="server_error")
    assert (await drive(r, request("g"), Script({"d1": [boom]}), clock)).tried == ["d1", "d2"]
    assert (await drive(r, request("g"), Script({}), clock)).tried == ["d2"]  # d1's circuit is open


async def test_the_configured_default_strategy_applies() -> None:
    clock = FakeClock()
    r = router([{"name": "g", "deployments": [dict(d) for d in THREE]}], clock, default_strategy="least-busy")
    r.health.load.started("d1")
    r.health.load.started("d2")
    assert (await drive(r, request("g"), Script({}), clock)).tried == ["d3"]


async def test_weighted_follows_the_weights() -> None:
    clock = FakeClock()
    deployments = [{"id": "d1", "weight": 1}, {"id": "d2", "weight": 3}, {"id": "d3", "weight": 6}]
    r = router(group("weighted", deployments), clock, seed=3)
    counts = Counter([(await drive(r, request("g"), Script({}), clock)).tried[0] for _ in range(2000)])
    assert 100 < counts["d1"] < 300
    assert 450 < counts["d2"] < 750
    assert 1050 < counts["d3"] < 1350


async def test_least_busy_takes_the_fewest_in_flight() -> None:
    clock = FakeClock()
    r = router(group("least-busy"), clock)
    for key, n in (("d1", 3), ("d2", 1), ("d3", 2)):
        for _ in range(n):
            r.health.load.started(key)
    assert (await drive(r, request("g"), Script({}), clock)).tried == ["d2"]


async def test_least_busy_reads_vllm_queues_and_what_was_sent_since() -> None:
    clock = FakeClock()
    r = router(group("least-busy"), clock)
    board = r.health.load
    board.report("d1", ReportedLoad(waiting=4, running=8, kv_usage=0.9))
    board.report("d2", ReportedLoad(waiting=0, running=8, kv_usage=0.5))
    board.report("d3", ReportedLoad(waiting=1, running=2, kv_usage=0.1))
    assert (await drive(r, request("g"), Script({}), clock)).tried == ["d3"]
    # Requests sent to d3 since its scrape count on top of what it reported.
    for _ in range(10):
        board.started("d3")
    assert (await drive(r, request("g"), Script({}), clock)).tried == ["d2"]


async def test_latency_tries_unmeasured_first_then_the_fastest() -> None:
    clock = FakeClock()
    r = router(group("latency"), clock, latency_exploration=0)
    took = {"d1": 0.5, "d2": 0.1, "d3": 0.3}
    first = [(await drive(r, request("g"), Script({}, took=took), clock)).tried[0] for _ in range(3)]
    assert first == ["d1", "d2", "d3"]
    later = {(await drive(r, request("g"), Script({}, took=took), clock)).tried[0] for _ in range(20)}
    assert later == {"d2"}


async def test_latency_uses_time_to_first_token_for_streams() -> None:
    clock = FakeClock()
    r = router(group("latency"), clock, latency_exploration=0)
    r.health.of(r.group("g").deployments[0]).latency.success(first_token_s=0.05, total_s=5.0)
    r.health.of(r.group("g").deployments[1]).latency.success(first_token_s=0.50, total_s=1.0)
    r.health.of(r.group("g").deployments[2]).latency.success(first_token_s=0.90, total_s=2.0)
    assert (await drive(r, request("g", stream=True), Script({}), clock)).tried == ["d1"]
    assert (await drive(r, request("g"), Script({}), clock)).tried == ["d2"]


async def test_latency_counts_failing_fast_as_slow_and_explores_a_little() -> None:
    clock = FakeClock()
    r = router(group("latency"), clock, latency_exploration=0.1, seed=11)
    boom = UpstreamError("boom", status=502, type="server_error")
    script = Script({"d1": [boom]}, took={"d1": 0.01, "d2": 0.2, "d3": 0.3})
    firsts = [(await drive(r, request("g"), script, clock)).tried[0] for _ in range(200)]
    late = Counter(firsts[50:])
    assert late.most_common(1)[0][0] == "d2"  # d1 answers fastest, but never well
    assert late["d3"] > 0  # exploration keeps measuring the others
    assert late["d2"] > 0.8 * 150


def test_latency_score_is_the_wait_for_one_good_answer() -> None:
    stats = LatencyStats(alpha=0.5)
    assert stats.score(stream=False) is None
    stats.success(None, 0.2)
    assert stats.score(stream=False) == 0.2
    stats.failure()
    assert stats.score(stream=False) == 0.4  # half the answers fail: twice the wait
    stats.success(0.05, 0.3)
    assert stats.score(stream=True) == 0.05 / 0.75


async def test_cost_takes_the_cheapest_for_the_expected_tokens() -> None:
    deployments: list[dict[str, Any]] = [
        {"id": "no-price"},
        {"id": "cheap-in", "price": {"input_per_mtok": "0.10", "output_per_mtok": "10.00"}},
        {"id": "cheap-out", "price": {"input_per_mtok": "5.00", "output_per_mtok": "0.50"}},
    ]
    clock = FakeClock()
    r = router(group("cost", deployments), clock)
    long_prompt = {"model": "g", "max_tokens": 10, "messages": [{"role": "user", "content": "x" * 40_000}]}
    long_answer = {"model": "g", "max_tokens": 4000, "messages": [{"role": "user", "content": "hi"}]}
    assert (await drive(r, request("g", body=long_prompt), Script({}), clock)).tried == ["cheap-in"]
    assert (await drive(r, request("g", body=long_answer), Script({}), clock)).tried == ["cheap-out"]


async def test_cost_skips_a_deployment_too_small_for_the_prompt() -> None:
    deployments = [
        {"id": "cheap-small", "context_window": 1000, "price": {"input_per_mtok": "0.1", "output_per_mtok": "0.1"}},
        {"id": "dear-large", "context_window": 100_000, "price": {"input_per_mtok": "1", "output_per_mtok": "1"}},
    ]
    clock = FakeClock()
    r = router(group("cost", deployments), clock)
    short = {"model": "g", "messages": [{"role": "user", "content": "hi"}]}
    long = {"model": "g", "messages": [{"role": "user", "content": "x" * 20_000}]}
    assert (await drive(r, request("g", body=short), Script({}), clock)).tried == ["cheap-small"]
    assert (await drive(r, request("g", body=long), Script({}), clock)).tried == ["dear-large"]


def conversation(system: str, question: str) -> dict[str, Any]:
    return {"model": "g", "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}]}


async def test_prefix_affinity_keeps_a_shared_prefix_on_one_replica_and_spreads_prefixes() -> None:
    clock = FakeClock()
    deployments = [{"id": f"r{i}"} for i in range(4)]
    r = router(group("prefix-affinity", deployments), clock)
    homes: dict[int, set[str]] = {}
    for p in range(40):
        for q in range(3):
            body = conversation(f"system prompt {p} " * 20, f"question {q}")
            run = await drive(r, request("g", body=body), Script({}), clock)
            homes.setdefault(p, set()).add(run.tried[0])
    assert all(len(h) == 1 for h in homes.values())  # idle replicas: every prefix has one home
    spread = Counter(next(iter(h)) for h in homes.values())
    assert len(spread) == 4 and max(spread.values()) <= 20


async def test_prefix_affinity_spills_from_an_overloaded_replica() -> None:
    clock = FakeClock()
    deployments = [{"id": f"r{i}"} for i in range(4)]
    r = router(group("prefix-affinity", deployments), clock, prefix_load_factor=1.25)
    body = conversation("a long shared system prompt " * 20, "q")
    home = (await drive(r, request("g", body=body), Script({}), clock)).tried[0]
    for _ in range(8):
        r.health.load.started(home)
    other = (await drive(r, request("g", body=body), Script({}), clock)).tried[0]
    assert other != home
    # The spill goes to the same next replica every time, so its cache warms too.
    again = (await drive(r, request("g", body=body), Script({}), clock)).tried[0]
    assert again == other


async def test_prefix_affinity_without_a_shared_prefix_is_least_busy() -> None:
    clock = FakeClock()
    r = router(group("prefix-affinity"), clock)
    r.health.load.started("d1")
    r.health.load.started("d3")
    body = {"model": "g", "messages": [{"role": "user", "content": "a short lone question"}]}
    assert (await drive(r, request("g", body=body), Script({}), clock)).tried == ["d2"]


async def test_succeeded_attempts_correct_the_token_estimate() -> None:
    clock = FakeClock()
    r = router(group("priority", [{"id": "d1", "tpm": 10_000}]), clock)
    plan = r.plan(request("g"))
    attempt = await plan.next()
    assert attempt is not None
    attempt.succeeded(Usage(prompt_tokens=5, completion_tokens=5))
    assert r.health.of(attempt.deployment).caps.ready_at(9_000, clock.now) == clock.now
