"""The router in a real gateway, over real sockets, against fake replicas told to fail, slow down
or rate-limit: the official SDK is the client."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from tests.procs import MASTER_KEY
from tests.routing.conftest import GatewayFactory, Replica, order, sdk

MESSAGES: Any = [{"role": "user", "content": "hi"}]


def ask(client: openai.OpenAI, model: str, request_id: str, **extra: Any) -> Any:
    headers = {"x-request-id": request_id, **extra.pop("headers", {})}
    return client.chat.completions.with_raw_response.create(
        model=model, messages=extra.pop("messages", MESSAGES), extra_headers=headers, **extra
    )


def test_retries_then_fallbacks_in_order(replicas: list[Replica], make_gateway: GatewayFactory) -> None:
    r0, r1, r2, _ = replicas
    r0.behave(status=500)
    r1.behave(status=503)
    gw = make_gateway([
        {"name": "main", "deployments": [r0.deployment(), r1.deployment()], "fallbacks": ["spare"]},
        {"name": "spare", "deployments": [r2.deployment()]},
    ], retries=1, max_attempts=6)
    raw = ask(sdk(gw), "main", "order-1")
    assert raw.parse().choices[0].message.content.startswith("r2")
    assert order("order-1", replicas) == ["r0", "r1", "r0", "r1", "r2"]
    assert raw.headers["x-gateway-deployment"] == "r2"
    assert raw.headers["x-gateway-attempts"] == "5"
    assert raw.headers["x-gateway-fallback"] == "true"


def test_a_served_request_says_so_in_its_headers(replicas: list[Replica], make_gateway: GatewayFactory) -> None:
    gw = make_gateway([{"name": "main", "deployments": [replicas[0].deployment()]}])
    raw = ask(sdk(gw), "main", "plain-1")
    assert (raw.headers["x-gateway-deployment"], raw.headers["x-gateway-attempts"]) == ("r0", "1")
    assert raw.headers["x-gateway-fallback"] == "false"


def test_a_client_error_is_not_retried(replicas: list[Replica], make_gateway: GatewayFactory) -> None:
    r0, r1, r2, _ = replicas
    r0.behave(status=400)
    gw = make_gateway([
        {"name": "main", "deployments": [r0.deployment(), r1.deployment()], "fallbacks": ["spare"]},
        {"name": "spare", "deployments": [r2.deployment()]},
    ], retries=2)
    with pytest.raises(openai.BadRequestError) as info:
        ask(sdk(gw), "main", "bad-1")
    assert order("bad-1", replicas) == ["r0"]
    assert info.value.response.headers["x-gateway-attempts"] == "1"


def test_retries_stop_at_the_deadline(replicas: list[Replica], make_gateway: GatewayFactory) -> None:
    r0, r1, _, _ = replicas
    r0.behave(latency_ms=5000)
    gw = make_gateway([{"name": "main", "deployments": [r0.deployment(), r1.deployment()]}], deadline_s=0.5)
    with pytest.raises(openai.APIStatusError) as info:
        ask(sdk(gw), "main", "late-1")
    assert info.value.status_code == 504
    assert info.value.code == "deadline_exceeded"
    assert order("late-1", replicas) == ["r0"]  # r1 was never tried: no time was left


def test_an_open_circuit_receives_no_traffic(replicas: list[Replica], make_gateway: GatewayFactory) -> None:
    r0, r1, _, _ = replicas
    r0.behave(status=502)
    gw = make_gateway([{"name": "main", "deployments": [r0.deployment(), r1.deployment()]}],
                      retries=0, breaker={"failures": 2, "min_requests": 2, "cooldown_s": 600})
    client = sdk(gw)
    for i in range(8):
        raw = ask(client, "main", f"open-{i}")
        assert raw.headers["x-gateway-deployment"] == "r1"
    assert [s["request_id"] for s in r0.served()] == ["open-0", "open-1"]
    assert len(r1.served()) == 8


def test_a_stream_falls_back_before_its_first_byte(replicas: list[Replica], make_gateway: GatewayFactory) -> None:
    r0, r1, _, _ = replicas
    r0.behave(status=503)
    gw = make_gateway([{"name": "main", "deployments": [r0.deployment(), r1.deployment()]}])
    with sdk(gw).chat.completions.with_streaming_response.create(
        model="main", messages=MESSAGES, stream=True, extra_headers={"x-request-id": "s-before-1"}
    ) as response:
        assert response.headers["x-gateway-deployment"] == "r1"
        assert response.headers["x-gateway-attempts"] == "2"
        chunks: Any = response.parse()
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text.startswith("r1")
    assert order("s-before-1", replicas) == ["r0", "r1"]


def test_a_stream_never_falls_back_after_its_first_byte(replicas: list[Replica], make_gateway: GatewayFactory) -> None:
    r0, r1, _, _ = replicas
    r0.behave(drop_after=2)
    gw = make_gateway([{"name": "main", "deployments": [r0.deployment(), r1.deployment()]}])
    seen = []
    with pytest.raises(openai.APIError):
        for chunk in sdk(gw).chat.completions.create(
            model="main", messages=MESSAGES, stream=True, extra_headers={"x-request-id": "s-after-1"}
        ):
            seen.append(chunk)
    assert seen  # the first bytes reached the client before the failure
    assert order("s-after-1", replicas) == ["r0"]
    assert r1.served() == []


def test_a_rate_limited_deployment_cools_down_and_others_serve(
    replicas: list[Replica], make_gateway: GatewayFactory
) -> None:
    r0, r1, _, _ = replicas
    r0.behave(status=429, retry_after=30)
    gw = make_gateway([{"name": "main", "deployments": [r0.deployment(), r1.deployment()]}])
    client = sdk(gw)
    for i in range(4):
        assert ask(client, "main", f"rl-{i}").headers["x-gateway-deployment"] == "r1"
    assert len(r0.served()) == 1  # asked once; its retry-after keeps it aside


def test_rpm_caps_spread_load_before_the_provider_says_429(
    replicas: list[Replica], make_gateway: GatewayFactory
) -> None:
    r0, r1, _, _ = replicas
    gw = make_gateway([{"name": "main", "deployments": [r0.deployment(rpm=3), r1.deployment()]}])
    client = sdk(gw)
    served = [ask(client, "main", f"cap-{i}").headers["x-gateway-deployment"] for i in range(6)]
    assert served == ["r0", "r0", "r0", "r1", "r1", "r1"]


def test_context_length_goes_to_the_larger_group(replicas: list[Replica], make_gateway: GatewayFactory) -> None:
    r0, r1, _, _ = replicas
    r0.behave(status=400, error_code="context_length_exceeded")
    gw = make_gateway([
        {"name": "small", "deployments": [r0.deployment()], "context_window_fallback": "large"},
        {"name": "large", "deployments": [r1.deployment()]},
    ])
    raw = ask(sdk(gw), "small", "ctx-1")
    assert raw.headers["x-gateway-deployment"] == "r1"
    assert raw.headers["x-gateway-fallback"] == "true"


def test_content_policy_refusal_goes_to_the_configured_group(
    replicas: list[Replica], make_gateway: GatewayFactory
) -> None:
    r0, r1, r2, _ = replicas
    r0.behave(status=400, error_code="content_policy_violation")
    gw = make_gateway([
        {"name": "strict", "deployments": [r0.deployment(), r1.deployment()], "content_policy_fallback": "other"},
        {"name": "other", "deployments": [r2.deployment()]},
    ])
    raw = ask(sdk(gw), "strict", "cp-1")
    assert raw.headers["x-gateway-deployment"] == "r2"
    assert order("cp-1", replicas) == ["r0", "r2"]


def test_latency_strategy_settles_on_the_fastest(replicas: list[Replica], make_gateway: GatewayFactory) -> None:
    r0, r1, r2, _ = replicas
    r0.behave(latency_ms=400)
    r2.behave(latency_ms=250)
    gw = make_gateway([{"name": "main", "strategy": "latency",
                        "deployments": [r0.deployment(), r1.deployment(), r2.deployment()]}],
                      latency_exploration=0)
    client = sdk(gw)
    served = [ask(client, "main", f"lat-{i}").headers["x-gateway-deployment"] for i in range(8)]
    assert served[:3] == ["r0", "r1", "r2"]  # each measured once
    assert set(served[3:]) == {"r1"}


def test_cost_strategy_takes_the_cheapest(replicas: list[Replica], make_gateway: GatewayFactory) -> None:
    r0, r1, _, _ = replicas
    gw = make_gateway([{"name": "main", "strategy": "cost", "deployments": [
        r0.deployment(price={"input_per_mtok": "3", "output_per_mtok": "15"}),
        r1.deployment(price={"input_per_mtok": "0.15", "output_per_mtok": "0.6"}),
    ]}])
    assert ask(sdk(gw), "main", "cost-1").headers["x-gateway-deployment"] == "r1"


def test_least_busy_reads_vllm_metrics(replicas: list[Replica], make_gateway: GatewayFactory) -> None:
    r0, r1, r2, _ = replicas
    r0.behave(report={"waiting": 20, "running": 64, "kv": 0.95})
    r1.behave(report={"waiting": 0, "running": 3, "kv": 0.1})
    r2.behave(report={"waiting": 5, "running": 64, "kv": 0.8}, old_metric_names=True)
    deployments = [r.deployment(provider="vllm") for r in (r0, r1, r2)]
    gw = make_gateway([{"name": "main", "strategy": "least-busy", "deployments": deployments}],
                      metrics_interval_s=0.05)
    wait_for_scrapes([r0, r1, r2])
    client = sdk(gw)
    assert {ask(client, "main", f"lb-{i}").headers["x-gateway-deployment"] for i in range(4)} == {"r1"}
    r1.behave(report={"waiting": 50, "running": 64, "kv": 1.0})
    wait_for_scrapes([r1])
    # r2 reports its KV use under vLLM's old metric name; it is read all the same.
    assert ask(client, "main", "lb-after").headers["x-gateway-deployment"] == "r2"


def wait_for_scrapes(replicas: list[Replica], more: int = 2) -> None:
    """Until each replica has been read `more` more times: what it reports now has reached the router."""
    targets = {r.name: r.stats()["scrapes"] + more for r in replicas}
    deadline = time.monotonic() + 20
    while any(r.stats()["scrapes"] < targets[r.name] for r in replicas):
        assert time.monotonic() < deadline, "the gateway stopped reading /metrics"
        time.sleep(0.02)


def test_prefix_affinity_keeps_conversations_on_one_replica(
    replicas: list[Replica], make_gateway: GatewayFactory
) -> None:
    gw = make_gateway([{"name": "main", "strategy": "prefix-affinity",
                        "deployments": [r.deployment(provider="vllm") for r in replicas]}], metrics_interval_s=0)
    client = sdk(gw)
    homes: dict[int, set[str]] = {}
    for c in range(12):
        system = {"role": "system", "content": f"You are assistant number {c}. " * 30}
        for q in range(3):
            raw = ask(client, "main", f"pa-{c}-{q}", messages=[system, {"role": "user", "content": f"q{q}"}])
            homes.setdefault(c, set()).add(raw.headers["x-gateway-deployment"])
    assert all(len(home) == 1 for home in homes.values())
    assert len({next(iter(home)) for home in homes.values()}) > 1  # conversations spread out
    # The second and third question of each conversation found its prefix cached.
    cached = [s["cached_tokens"] for r in replicas for s in r.served() if not s["request_id"].endswith("-0")]
    assert len(cached) == 24 and all(tokens > 0 for tokens in cached)


def test_header_overrides_where_allowed(replicas: list[Replica], make_gateway: GatewayFactory) -> None:
    r0, r1, _, _ = replicas
    gw = make_gateway([
        {"name": "open", "allow_header_overrides": True,
         "deployments": [r0.deployment(tags=["us"]), r1.deployment(tags=["eu"])]},
        {"name": "closed", "deployments": [r0.deployment(id="c0"), r1.deployment(id="c1")]},
    ])
    client = sdk(gw)
    raw = ask(client, "open", "tag-1", headers={"x-gateway-deployment-tag": "eu"})
    assert raw.headers["x-gateway-deployment"] == "r1"
    with pytest.raises(openai.BadRequestError):
        ask(client, "closed", "tag-2", headers={"x-gateway-deployment-tag": "eu"})
    with pytest.raises(openai.BadRequestError):
        ask(client, "open", "tag-3", headers={"x-gateway-strategy": "nonsense"})


def test_aliases_and_wildcard_routes(replicas: list[Replica], make_gateway: GatewayFactory) -> None:
    r0, r1, _, _ = replicas
    gw = make_gateway([
        {"name": "main", "aliases": ["everyday"], "deployments": [r0.deployment()]},
        {"name": "vendor/*", "deployments": [{"provider": "openai", "base_url": r1.url, "id": "vendor"}]},
    ])
    client = sdk(gw)
    assert ask(client, "everyday", "alias-1").headers["x-gateway-deployment"] == "r0"
    assert ask(client, "vendor/some-model-7b", "wild-1").headers["x-gateway-deployment"] == "vendor"
    assert [s["model"] for s in r1.served("wild-1")] == ["some-model-7b"]
    listed = httpx.get(gw.url + "/models", headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    assert [m["id"] for m in listed["data"]] == ["main"]
    with pytest.raises(openai.NotFoundError):
        ask(client, "other/some-model", "wild-2")
