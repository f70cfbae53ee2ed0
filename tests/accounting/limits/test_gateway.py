"""The limiter in a real gateway process, driven by the official openai SDK.

Until virtual keys land, the limits come from the config file's per-model `limits:` block,
which applies to every caller, the master key included.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from redis.asyncio import Redis

from tests.accounting.limits.conftest import SHARED_REDIS
from tests.accounting.limits.servers import PrivateRedis
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
# One request costs (2 + 16 tokens) * $100/Mtok = $0.0018, more than the whole budget.
DEAR = {"input_per_mtok": "100", "output_per_mtok": "100"}


@pytest.fixture(scope="module")
def limited_gateway(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory, session_prefix: str, shared_redis: Redis
) -> Iterator[Gateway]:
    models = [
        {"name": "rpm-capped", "deployments": [deployment(upstream)], "limits": {"rpm": 2}},
        {"name": "tpm-capped", "deployments": [deployment(upstream)], "limits": {"tpm": 6000}},
        {
            "name": "budgeted",
            "deployments": [deployment(upstream, price=DEAR)],
            "limits": {"budget_usd": "0.001", "budget_period": "daily"},
        },
        {"name": "dear", "deployments": [deployment(upstream, price=DEAR)]},
        {"name": "one-at-a-time", "deployments": [deployment(upstream)], "limits": {"max_parallel": 1}},
    ]
    settings = {"redis_url": SHARED_REDIS, "redis_prefix": f"{session_prefix}-gw"}
    gw = Gateway(tmp_path_factory.mktemp("limited"), models, settings=settings)
    yield gw
    gw.close()


def test_a_refused_request_raises_the_sdks_rate_limit_error(limited_gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=limited_gateway.url, api_key=MASTER_KEY, max_retries=0)
    for remaining in ("1", "0"):
        raw = client.chat.completions.with_raw_response.create(model="rpm-capped", messages=MESSAGES)
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == remaining
        assert raw.parse().choices[0].message.content
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="rpm-capped", messages=MESSAGES)
    error = info.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.type == "requests"
    headers = error.response.headers
    assert 1 <= int(headers["retry-after"]) <= 30
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert headers["x-request-id"]
    assert "x-should-retry" not in headers  # waiting helps: the SDK may retry after retry-after


def test_the_sdk_does_not_retry_an_exhausted_budget(limited_gateway: Gateway, upstream: FakeUpstream) -> None:
    sent: list[str] = []
    http = openai.DefaultHttpxClient(event_hooks={"request": [lambda request: sent.append(str(request.url))]})
    client = openai.OpenAI(base_url=limited_gateway.url, api_key=MASTER_KEY, max_retries=2, http_client=http)
    before = upstream.stats()["requests"]

    client.chat.completions.create(model="budgeted", messages=MESSAGES)  # spends past the budget
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="budgeted", messages=MESSAGES)

    error = info.value
    assert (error.code, error.type) == ("insufficient_quota", "insufficient_quota")
    assert error.response.headers["x-should-retry"] == "false"
    assert int(error.response.headers["retry-after"]) >= 1  # until the daily budget resets
    assert len(sent) == 2  # one try each: no retry of the refusal, despite max_retries=2
    assert upstream.stats()["requests"] - before == 1  # the refused request never went upstream


def test_virtual_keys_get_their_own_and_their_teams_limits(limited_gateway: Gateway) -> None:
    admin = httpx.Client(base_url=limited_gateway.base + "/admin/api", headers=AUTH, timeout=10)
    team = admin.post("/teams", json={"name": f"limits-{uuid.uuid4().hex[:8]}", "rpm": 100}).json()
    quick = admin.post("/keys", json={"team_id": team["id"], "rpm": 1}).json()
    budget = {"budget_usd": "0.001", "budget_period": "monthly"}
    thrifty = admin.post("/keys", json={"team_id": team["id"], **budget}).json()

    client = openai.OpenAI(base_url=limited_gateway.url, api_key=quick["key"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="dear", messages=MESSAGES)
    # The key's 1 a minute binds harder than the team's 100.
    assert (raw.headers["x-ratelimit-limit-requests"], raw.headers["x-ratelimit-remaining-requests"]) == ("1", "0")
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="dear", messages=MESSAGES)
    assert refused.value.code == "rate_limit_exceeded"

    client = openai.OpenAI(base_url=limited_gateway.url, api_key=thrifty["key"], max_retries=2)
    client.chat.completions.create(model="dear", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as spent:
        client.chat.completions.create(model="dear", messages=MESSAGES)
    assert spent.value.code == "insufficient_quota"
    # The admin API reads the settled spend: 18 tokens at $100 per million.
    report = admin.get(f"/keys/{thrifty['id']}/spend").json()
    assert report["spend"]["spent_usd"] == "0.001800"
    team_report = admin.get(f"/teams/{team['id']}/spend").json()
    assert team_report["spend"] is None  # the team has no budget: the limiter keeps no spend for it


def test_streams_carry_the_headers_and_settle_real_usage(limited_gateway: Gateway) -> None:
    body: dict[str, Any] = {"model": "tpm-capped", "messages": MESSAGES, "stream": True, "max_tokens": 1000}
    with httpx.stream("POST", limited_gateway.url + "/chat/completions", json=body, headers=AUTH) as response:
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit-tokens"] == "6000"
        first_remaining = int(response.headers["x-ratelimit-remaining-tokens"])
        text = "".join(response.iter_text())
    assert "[DONE]" in text
    # "hello there": 3 + 4 estimated prompt tokens, plus max_tokens.
    reserved = 1007
    assert first_remaining <= 6000 - reserved

    # The stream used 2 + 16 tokens, far fewer than it reserved: the rest came back at settle.
    second = httpx.post(limited_gateway.url + "/chat/completions", json={**body, "stream": False}, headers=AUTH)
    assert second.status_code == 200
    assert int(second.headers["x-ratelimit-remaining-tokens"]) >= 6000 - 18 - reserved


def test_a_caller_that_waits_for_each_answer_never_meets_its_own_parallel_slot(limited_gateway: Gateway) -> None:
    """An answer is sent before its limits are settled (gateway/pipeline/proxy.py), so the slot a request
    held is handed back just after the client has its answer: the caller's next request, sent at
    once, must still find it free. Unary, streamed and through /v1/messages."""
    client = openai.OpenAI(base_url=limited_gateway.url, api_key=MASTER_KEY, max_retries=0)
    claude = anthropic.Anthropic(base_url=limited_gateway.base, api_key=MASTER_KEY, max_retries=0)
    for _ in range(40):
        raw = client.chat.completions.with_raw_response.create(model="one-at-a-time", messages=MESSAGES)
        assert raw.parse().choices[0].message.content
        stream = client.chat.completions.create(model="one-at-a-time", messages=MESSAGES, stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        message = claude.messages.create(model="one-at-a-time", max_tokens=20,
                                         messages=[{"role": "user", "content": "hello there"}])  # fmt: skip
        assert message.content

    # The slot is really held while a request runs: of two at once, one is turned away.
    slow: dict[str, Any] = {"fake": {"latency_ms": 400}}

    def call() -> int:
        try:
            client.chat.completions.create(model="one-at-a-time", messages=MESSAGES, extra_body=slow)
        except openai.RateLimitError as refused:
            assert "parallel" in refused.message
            return 429
        return 200

    with ThreadPoolExecutor(2) as pool:
        assert sorted(pool.map(lambda _: call(), range(2))) == [200, 429]


# Redis restarted under a running gateway.


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()


def _post(gw: Gateway, model: str) -> httpx.Response:
    # The generous client timeout only catches a hang; the gateway's own bound is 0.2 s.
    response = httpx.post(gw.url + "/chat/completions", json={"model": model, "messages": MESSAGES},
                          headers=AUTH, timeout=10)  # fmt: skip
    assert response.status_code != 500, response.text
    assert "Traceback" not in response.text
    return response


def _statuses(gw: Gateway, model: str, n: int) -> list[int]:
    return [_post(gw, model).status_code for _ in range(n)]


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_gateway_keeps_answering_while_redis_restarts(
    mode: str, private_redis: PrivateRedis, upstream: FakeUpstream, tmp_path: Path
) -> None:
    models = [
        {"name": "capped", "deployments": [deployment(upstream)], "limits": {"rpm": 10_000}},
        {"name": "tight", "deployments": [deployment(upstream)], "limits": {"rpm": 2}},
    ]
    settings = {
        "redis_url": private_redis.url,
        "limits_failure_mode": mode,
        "limits_redis_timeout_s": 1.0,
        "limits_redis_recheck_s": 0.2,
    }
    gw = Gateway(tmp_path, models, settings=settings)
    try:
        assert _statuses(gw, "tight", 3) == [200, 200, 429]

        private_redis.stop()
        during = _post(gw, "capped")
        if mode == "closed":
            assert during.status_code == 503
            assert during.json()["error"]["code"] == "limits_unavailable"
            assert during.headers["retry-after"]
            assert _statuses(gw, "tight", 2) == [503, 503]
        else:
            assert during.status_code == 200
            # Per process now, and from zero: the same limit still holds.
            assert _statuses(gw, "tight", 3) == [200, 200, 429]

        private_redis.start()  # empty, as a restarted Redis without persistence is
        # "tight" is spent in the per-process fallback and unknown to the new Redis: its first 200
        # says the gateway is back on Redis (within the recheck interval).
        deadline = time.monotonic() + 10
        while _post(gw, "tight").status_code != 200:
            assert time.monotonic() < deadline, "the gateway did not return to Redis"
            time.sleep(0.05)
        assert _statuses(gw, "tight", 2) == [200, 429]

        private_redis.pause()  # hung, not gone: the timeout answers for it
        try:
            hung = _post(gw, "capped")
        finally:
            private_redis.resume()
        assert hung.status_code == (503 if mode == "closed" else 200)
    finally:
        gw.close()


@pytest.mark.parametrize("streamed", [False, True])
def test_responses_reserve_from_max_output_tokens(limited_gateway: Gateway, streamed: bool) -> None:
    body: dict[str, Any] = {"model": "tpm-capped", "input": "hello there", "max_output_tokens": 1000,
                            "stream": streamed, "store": False}
    with httpx.stream("POST", limited_gateway.url + "/responses", json=body, headers=AUTH) as response:
        assert response.status_code == 200
        remaining = int(response.headers["x-ratelimit-remaining-tokens"])
        response.read()
    assert remaining <= 6000 - 1000  # max_output_tokens was reserved before the call
    too_big = httpx.post(limited_gateway.url + "/responses", headers=AUTH,
                         json={**body, "max_output_tokens": 7000})
    assert too_big.status_code == 429 and too_big.json()["error"]["type"] == "tokens"
