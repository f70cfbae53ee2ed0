"""Every kind of call is exactly one correct row, through a real gateway into a real Postgres.

The fake upstream's usage is known: prompt_tokens is the number of words of all messages (or
the prompt, or the input) and completion_tokens is `tokens` (16 by default) times `n`.
"""

from __future__ import annotations

import math
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.accounting.limits.estimate import CHARS_PER_TOKEN, prompt_tokens
from gateway.accounting.pricing import load_price_table
from gateway.core.types import Endpoint
from tests.accounting.ledger.conftest import PER_REQUEST, PRICED, ledger_models
from tests.accounting.ledger.helpers import cost, fetch, wait_rows
from tests.procs import MASTER_KEY, FakeUpstream, Gateway

TOKENS = 16
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def rid() -> str:
    return "req_test_" + uuid.uuid4().hex


@pytest.fixture
def client(ledger_gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=ledger_gateway.url, api_key=MASTER_KEY, max_retries=0)


def check_timings(row: dict[str, Any]) -> None:
    assert row["latency_ms"] > 0
    if row["upstream_ms"] is not None:
        assert 0 <= row["upstream_ms"] <= row["latency_ms"]
        assert row["overhead_ms"] == pytest.approx(row["latency_ms"] - row["upstream_ms"], abs=0.002)
    else:
        assert row["overhead_ms"] == row["latency_ms"]
    if row["stream"] and row["status"] == 200:
        assert 0 < row["ttft_ms"] <= row["latency_ms"]


def test_unary_chat_row_has_usage_cost_and_attribution(client: openai.OpenAI, ledger_dsn: str) -> None:
    request_id = rid()
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there world"}]
    client.chat.completions.create(
        model="priced", messages=messages, n=2, user="end-user-7",  # type: ignore[arg-type]
        extra_headers={"x-request-id": request_id, "x-gateway-tags": "feature=search, env=prod"},
    )
    row = wait_rows(ledger_dsn, [request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (5, 2 * TOKENS, 0)
    assert row["cost_usd"] == cost(PRICED, 5, 2 * TOKENS) == Decimal("0.000495")
    assert row["tokens_estimated"] is False
    assert row["end_user"] == "end-user-7"
    assert row["tags"] == {"feature": "search", "env": "prod"}
    assert (row["key_id"], row["key_prefix"], row["team_id"]) == ("master", "master", None)
    assert (row["requested_model"], row["served_model"], row["provider"], row["deployment"]) == (
        "priced", "fake-gpt", "openai", "priced/0")
    assert (row["endpoint"], row["stream"], row["status"], row["error_type"]) == ("chat/completions", False, 200, None)
    assert (row["attempts"], row["fallback"], row["cancelled"], row["cache_hit"]) == (1, False, False, False)
    check_timings(row)


@pytest.mark.parametrize("client_wants_usage", [False, True])
def test_stream_row_takes_the_forced_usage_chunk(
    client: openai.OpenAI, ledger_dsn: str, client_wants_usage: bool
) -> None:
    request_id = rid()
    options = {"stream_options": {"include_usage": True}} if client_wants_usage else {}
    chunks = list(client.chat.completions.create(
        model="priced", messages=[{"role": "user", "content": "one two three four"}], stream=True,
        extra_headers={"x-request-id": request_id}, **options,  # type: ignore[arg-type]
    ))
    # The client sees the usage chunk only when it asked for it.
    assert any(c.usage is not None for c in chunks) is client_wants_usage
    row = wait_rows(ledger_dsn, [request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"], row["tokens_estimated"]) == (4, TOKENS, False)
    assert row["cost_usd"] == cost(PRICED, 4, TOKENS)
    assert (row["stream"], row["status"], row["cancelled"]) == (True, 200, False)
    check_timings(row)


def test_completions_and_embeddings_rows(client: openai.OpenAI, ledger_dsn: str) -> None:
    completion_id, embedding_id = rid(), rid()
    client.completions.create(model="per-request", prompt="one two three",
                              extra_headers={"x-request-id": completion_id})
    client.embeddings.create(model="per-request", input=["a b", "c d e"],
                             extra_headers={"x-request-id": embedding_id})
    rows = wait_rows(ledger_dsn, [completion_id, embedding_id])
    completion, embedding = rows[completion_id], rows[embedding_id]
    assert (completion["endpoint"], completion["prompt_tokens"], completion["completion_tokens"]) == (
        "completions", 3, TOKENS)
    assert completion["cost_usd"] == cost(PER_REQUEST, 3, TOKENS) == Decimal("0.010035")
    assert (embedding["endpoint"], embedding["prompt_tokens"], embedding["completion_tokens"]) == ("embeddings", 5, 0)
    assert embedding["cost_usd"] == cost(PER_REQUEST, 5, 0)


def test_shipped_price_table_and_unknown_price(
    client: openai.OpenAI, ledger_dsn: str, ledger_gateway: Gateway
) -> None:
    table_id, unpriced_id = rid(), rid()
    messages = [{"role": "user", "content": "what is two plus two"}]
    client.chat.completions.create(model="table", messages=messages, extra_headers={"x-request-id": table_id})  # type: ignore[arg-type]
    client.chat.completions.create(model="unpriced", messages=messages, extra_headers={"x-request-id": unpriced_id})  # type: ignore[arg-type]
    rows = wait_rows(ledger_dsn, [table_id, unpriced_id])
    shipped = load_price_table()["openai/gpt-4o-mini"]
    expected = (5 * shipped.input_per_mtok + TOKENS * shipped.output_per_mtok) / 1_000_000
    assert rows[table_id]["served_model"] == "gpt-4o-mini"
    assert rows[table_id]["cost_usd"] == expected
    # No price: tokens are kept, the cost is unknown (NULL, not zero) and counted as a warning.
    assert (rows[unpriced_id]["prompt_tokens"], rows[unpriced_id]["completion_tokens"]) == (5, TOKENS)
    assert rows[unpriced_id]["cost_usd"] is None
    status = httpx.get(ledger_gateway.base + "/admin/api/ledger/status", headers=AUTH).json()
    assert status["unpriced"] >= 1
    [rollup] = fetch(ledger_dsn, "SELECT sum(unpriced) AS n FROM ledger_daily WHERE model = 'unpriced'")
    assert rollup["n"] >= 1


def test_refused_requests_are_rows_too(ledger_gateway: Gateway, ledger_dsn: str) -> None:
    url = ledger_gateway.url + "/chat/completions"
    good = {"model": "priced", "messages": [{"role": "user", "content": "hi"}]}
    cases = {
        "no key": ({}, good, 401),
        "wrong key": ({"Authorization": "Bearer sk-wrong"}, good, 401),
        "bad json": (AUTH, b"{not json", 400),
        "bad tags": ({**AUTH, "x-gateway-tags": "no-equals-sign"}, good, 400),
        "unknown model": (AUTH, {**good, "model": "nope"}, 404),
        "too large": (AUTH, {**good, "messages": [{"role": "user", "content": "x" * 70_000}]}, 413),
    }
    ids = {}
    for name, (headers, body, status) in cases.items():
        ids[name] = rid()
        sent = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = httpx.post(url, headers={**headers, "x-request-id": ids[name]}, **sent)  # type: ignore[arg-type]
        assert response.status_code == status, name
    rows = wait_rows(ledger_dsn, ids.values())
    for name, (_, _, status) in cases.items():
        row = rows[ids[name]]
        assert (row["status"], row["error_type"]) == (status, "invalid_request_error"), name
        assert (row["prompt_tokens"], row["completion_tokens"], row["cost_usd"]) == (0, 0, 0), name
        assert (row["attempts"], row["upstream_ms"], row["deployment"]) == (0, None, None), name
        check_timings(row)
    assert rows[ids["no key"]]["key_id"] is None and rows[ids["wrong key"]]["key_id"] is None
    assert rows[ids["bad json"]]["key_id"] == "master"
    assert rows[ids["unknown model"]]["requested_model"] == "nope"
    assert rows[ids["bad tags"]]["tags"] == {}


def test_requests_refused_by_limits_or_overload_are_rows(
    ledger_gateway: Gateway, ledger_dsn: str, upstream: FakeUpstream, tmp_path: Path
) -> None:
    body = {"model": "limited", "messages": [{"role": "user", "content": "hi"}]}
    first, second = rid(), rid()
    for request_id in (first, second):
        response = httpx.post(ledger_gateway.url + "/chat/completions", json=body,
                              headers={**AUTH, "x-request-id": request_id})  # fmt: skip
    assert response.status_code == 429
    # A gateway that takes one request at a time sheds the second with 503 before reading it.
    gw = Gateway(tmp_path, ledger_models(upstream), settings={
        "database_url": ledger_dsn, "data_dir": str(tmp_path / "data"), "ledger_flush_s": 0.05, "max_inflight": 1})
    slow, shed = rid(), rid()
    try:
        with httpx.Client(timeout=30) as http:
            slow_body = {"model": "priced", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                         "fake": {"tokens": 50, "inter_token_ms": 20}}  # fmt: skip
            with http.stream("POST", gw.url + "/chat/completions", json=slow_body,
                             headers={**AUTH, "x-request-id": slow}) as streaming:  # fmt: skip
                lines = streaming.iter_lines()  # kept: dropping the iterator would hang up
                next(lines)
                refused = http.post(gw.url + "/chat/completions", json=body, headers={**AUTH, "x-request-id": shed})
                assert refused.status_code == 503
                assert sum(1 for _ in lines) > 0
    finally:
        gw.close()
    rows = wait_rows(ledger_dsn, [first, second, slow, shed])
    assert (rows[first]["status"], rows[first]["error_type"]) == (200, None)
    assert rows[second]["status"] == 429 and rows[second]["error_type"] is not None
    assert (rows[second]["attempts"], rows[second]["completion_tokens"], rows[second]["cost_usd"]) == (0, 0, 0)
    assert (rows[shed]["status"], rows[shed]["error_type"], rows[shed]["endpoint"]) == (
        503, "server_error", "chat/completions")
    assert (rows[shed]["key_id"], rows[shed]["requested_model"]) == (None, None)
    assert rows[slow]["completion_tokens"] == 50


@pytest.mark.parametrize(
    ("model", "fake", "status", "error_type"),
    [
        ("priced", {"status": 500}, 502, "server_error"),
        ("priced", {"status": 429}, 429, "requests"),
        ("down", None, 502, "server_error"),
    ],
)
def test_failed_upstream_calls_cost_nothing(
    ledger_gateway: Gateway, ledger_dsn: str, model: str, fake: dict[str, Any] | None, status: int, error_type: str
) -> None:
    request_id = rid()
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if fake is not None:
        body["fake"] = fake
    response = httpx.post(ledger_gateway.url + "/chat/completions", json=body,
                          headers={**AUTH, "x-request-id": request_id})  # fmt: skip
    assert response.status_code == status
    row = wait_rows(ledger_dsn, [request_id])[request_id]
    assert (row["status"], row["error_type"]) == (status, error_type)
    assert (row["prompt_tokens"], row["completion_tokens"], row["cost_usd"]) == (0, 0, 0)
    assert row["attempts"] >= 1 and row["deployment"] == f"{model}/0"
    check_timings(row)


def test_fallback_row_names_what_served_it(client: openai.OpenAI, ledger_dsn: str) -> None:
    request_id = rid()
    client.chat.completions.create(model="primary", messages=[{"role": "user", "content": "a b c"}],
                                   extra_headers={"x-request-id": request_id})  # fmt: skip
    row = wait_rows(ledger_dsn, [request_id])[request_id]
    assert (row["fallback"], row["requested_model"], row["deployment"], row["status"]) == (
        True, "primary", "priced/0", 200)
    assert row["attempts"] >= 2
    assert row["cost_usd"] == cost(PRICED, 3, TOKENS)


def test_unary_answer_without_usage_is_estimated(client: openai.OpenAI, ledger_dsn: str) -> None:
    request_id = rid()
    messages = [{"role": "user", "content": "tell me something about the sea"}]
    reply = client.chat.completions.create(
        model="priced", messages=messages,  # type: ignore[arg-type]
        extra_body={"fake": {"usage": False}}, extra_headers={"x-request-id": request_id},
    )
    assert reply.usage is None
    row = wait_rows(ledger_dsn, [request_id])[request_id]
    prompt = prompt_tokens({"messages": messages}, Endpoint.CHAT)
    completion = math.ceil(len(reply.choices[0].message.content or "") / CHARS_PER_TOKEN)
    assert (row["prompt_tokens"], row["completion_tokens"], row["tokens_estimated"]) == (prompt, completion, True)
    assert row["cost_usd"] == cost(PRICED, prompt, completion)


def test_stream_without_usage_counts_the_relayed_deltas(client: openai.OpenAI, ledger_dsn: str) -> None:
    request_id = rid()
    messages = [{"role": "user", "content": "count the waves"}]
    chunks = list(client.chat.completions.create(
        model="priced", messages=messages, stream=True,  # type: ignore[arg-type]
        extra_body={"fake": {"usage": False}}, extra_headers={"x-request-id": request_id},
    ))
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == TOKENS
    row = wait_rows(ledger_dsn, [request_id])[request_id]
    prompt = prompt_tokens({"messages": messages}, Endpoint.CHAT)
    assert (row["prompt_tokens"], row["completion_tokens"], row["tokens_estimated"]) == (prompt, TOKENS, True)
    assert row["cost_usd"] == cost(PRICED, prompt, TOKENS)


def test_client_cancel_is_charged_for_what_was_sent(ledger_gateway: Gateway, ledger_dsn: str) -> None:
    request_id = rid()
    messages = [{"role": "user", "content": "write a very long story"}]
    body = {"model": "priced", "messages": messages, "stream": True, "fake": {"tokens": 500, "inter_token_ms": 20}}
    read = 0
    with httpx.stream("POST", ledger_gateway.url + "/chat/completions", json=body,
                      headers={**AUTH, "x-request-id": request_id}) as response:  # fmt: skip
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                read += 1
                if read == 5:
                    break  # and hang up
    row = wait_rows(ledger_dsn, [request_id])[request_id]
    prompt = prompt_tokens({"messages": messages}, Endpoint.CHAT)
    assert row["cancelled"] is True and row["status"] == 200
    assert row["tokens_estimated"] is True
    assert row["prompt_tokens"] == prompt
    # What the gateway relayed: at least what the client read, far less than the whole answer.
    assert 5 <= row["completion_tokens"] < 500
    assert row["cost_usd"] == cost(PRICED, prompt, row["completion_tokens"])


def test_cancel_before_the_first_byte_costs_nothing(ledger_gateway: Gateway, ledger_dsn: str) -> None:
    request_id = rid()
    body = {"model": "priced", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "fake": {"ttft_ms": 3000}}  # fmt: skip
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(ledger_gateway.url + "/chat/completions", json=body,
                   headers={**AUTH, "x-request-id": request_id}, timeout=0.5)  # fmt: skip
    row = wait_rows(ledger_dsn, [request_id])[request_id]
    assert (row["status"], row["cancelled"], row["error_type"]) == (499, True, None)
    assert (row["prompt_tokens"], row["completion_tokens"], row["cost_usd"]) == (0, 0, 0)


def test_stream_that_breaks_midway_charges_the_relayed_part(client: openai.OpenAI, ledger_dsn: str) -> None:
    request_id = rid()
    seen = 0
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model="priced", messages=[{"role": "user", "content": "go on"}], stream=True,
            extra_body={"fake": {"drop_after": 3, "inter_token_ms": 5}}, extra_headers={"x-request-id": request_id},
        ):
            seen += bool(chunk.choices and chunk.choices[0].delta.content)
    row = wait_rows(ledger_dsn, [request_id])[request_id]
    # The status line was 200; the failure travelled in-band and the row says what it was.
    assert (row["status"], row["error_type"]) == (200, "server_error")
    assert seen == row["completion_tokens"] == 3 and row["tokens_estimated"] is True


def test_rollup_matches_the_raw_rows(client: openai.OpenAI, ledger_dsn: str) -> None:
    ids = [rid() for _ in range(5)]
    for request_id in ids:
        client.chat.completions.create(model="priced", messages=[{"role": "user", "content": "a b c"}],
                                       extra_headers={"x-request-id": request_id})  # fmt: skip
    wait_rows(ledger_dsn, ids)
    rollup = fetch(ledger_dsn, """
        SELECT day, team_id, key_id, model, provider, requests, errors, prompt_tokens, completion_tokens,
               cached_tokens, estimated, cost_usd, unpriced
        FROM ledger_daily ORDER BY 1, 2, 3, 4, 5""")
    raw = fetch(ledger_dsn, """
        SELECT (ts AT TIME ZONE 'UTC')::date AS day, coalesce(team_id, '') AS team_id, coalesce(key_id, '') AS key_id,
               coalesce(requested_model, '') AS model, coalesce(provider, '') AS provider,
               count(*) AS requests,
               count(*) FILTER (WHERE error_type IS NOT NULL OR (status >= 400 AND status <> 499)) AS errors,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(cached_tokens) AS cached_tokens, count(*) FILTER (WHERE tokens_estimated) AS estimated,
               coalesce(sum(cost_usd), 0) AS cost_usd, count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced
        FROM ledger_requests GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5""")
    assert rollup == raw
    assert any(r["model"] == "priced" and r["requests"] >= 5 for r in rollup)
