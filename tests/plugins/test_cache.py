"""The exact-match response cache through a real gateway on the real Redis: hits and misses,
streamed and not (either form replays as the other), isolation between teams, TTL expiry by
Redis itself, the bypass header, and the ledger rows of hits."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.plugins.conftest import ADMIN, WAIT_S, Tenant, Tenants, client_for, ledger_row
from tests.procs import MASTER_KEY, FakeUpstream, Gateway


def rid() -> str:
    return "req_cache_" + uuid.uuid4().hex


def question() -> list[dict[str, str]]:
    """A question no other test asks, so each test starts from an empty cache."""
    return [{"role": "user", "content": f"what is the colour number {uuid.uuid4().hex}"}]


def ask(gw: Gateway, tenant: Tenant, messages: list[dict[str, str]], cache: str | None = None,
        **kwargs: Any) -> tuple[str, str | None, str]:
    """(answer text, x-gateway-cache, request id) of a unary call."""
    request_id = rid()
    headers = {"x-request-id": request_id, **({"x-gateway-cache": cache} if cache else {})}
    raw = client_for(gw, tenant).chat.completions.with_raw_response.create(
        model="chat", messages=messages, extra_headers=headers, **kwargs)  # type: ignore[arg-type]
    return raw.parse().choices[0].message.content or "", raw.headers.get("x-gateway-cache"), request_id


def ask_stream(gw: Gateway, tenant: Tenant, messages: list[dict[str, str]], cache: str | None = None,
               usage: bool = False) -> tuple[str, str | None, str, list[Any]]:
    request_id = rid()
    headers = {"x-request-id": request_id, **({"x-gateway-cache": cache} if cache else {})}
    options = {"stream_options": {"include_usage": True}} if usage else {}
    with client_for(gw, tenant).chat.completions.with_streaming_response.create(
        model="chat", messages=messages, stream=True, extra_headers=headers, **options,  # type: ignore[arg-type]
    ) as response:
        chunks = list(response.parse())
        state = response.headers.get("x-gateway-cache")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, state, request_id, chunks


def test_unary_miss_then_hit(plugin_gateway: Gateway, tenants: Tenants, upstream: FakeUpstream) -> None:
    messages = question()
    first, state, first_id = ask(plugin_gateway, tenants.alpha, messages)
    assert state == "miss" and upstream.requests(first_id)
    second, state, second_id = ask(plugin_gateway, tenants.alpha, messages)
    assert (second, state) == (first, "hit")
    assert upstream.requests(second_id) == []  # answered without the upstream


def test_stream_miss_then_stream_and_unary_hits(plugin_gateway: Gateway, tenants: Tenants) -> None:
    messages = question()
    text, state, _, chunks = ask_stream(plugin_gateway, tenants.alpha, messages)
    assert state == "miss" and len(chunks) > 3
    replayed, state, _, _ = ask_stream(plugin_gateway, tenants.alpha, messages)
    assert (replayed, state) == (text, "hit")
    unary, state, _ = ask(plugin_gateway, tenants.alpha, messages)
    assert (unary, state) == (text, "hit")


def test_unary_answer_replays_as_a_stream_with_usage(plugin_gateway: Gateway, tenants: Tenants) -> None:
    messages = question()
    text, _, _ = ask(plugin_gateway, tenants.alpha, messages)
    replayed, state, _, chunks = ask_stream(plugin_gateway, tenants.alpha, messages, usage=True)
    assert (replayed, state) == (text, "hit")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 16
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_parameters_that_change_the_answer_change_the_key(plugin_gateway: Gateway, tenants: Tenants) -> None:
    messages = question()
    ask(plugin_gateway, tenants.alpha, messages, temperature=0.1)
    assert ask(plugin_gateway, tenants.alpha, messages, temperature=0.9)[1] == "miss"
    assert ask(plugin_gateway, tenants.alpha, messages, temperature=0.1)[1] == "hit"
    # `user` does not change the answer.
    assert ask(plugin_gateway, tenants.alpha, messages, temperature=0.1, user="someone-else")[1] == "hit"


def test_teams_do_not_share_answers(plugin_gateway: Gateway, tenants: Tenants) -> None:
    messages = question()
    ask(plugin_gateway, tenants.alpha, messages)
    assert ask(plugin_gateway, tenants.alpha2, messages)[1] == "hit"  # the same team, another key
    assert ask(plugin_gateway, tenants.beta, messages, cache="use")[1] == "miss"  # another team
    master = openai.OpenAI(base_url=plugin_gateway.url, api_key=MASTER_KEY, max_retries=0)
    raw = master.chat.completions.with_raw_response.create(model="chat", messages=messages)  # type: ignore[arg-type]
    assert "x-gateway-cache" not in raw.headers  # no cache configured for it


def test_opt_in_by_header(plugin_gateway: Gateway, tenants: Tenants) -> None:
    messages = question()
    assert ask(plugin_gateway, tenants.beta, messages)[1] is None  # team beta caches only on request
    assert ask(plugin_gateway, tenants.beta, messages)[1] is None
    assert ask(plugin_gateway, tenants.beta, messages, cache="use")[1] == "miss"
    assert ask(plugin_gateway, tenants.beta, messages, cache="use")[1] == "hit"


def test_bypass_and_no_store(plugin_gateway: Gateway, tenants: Tenants, upstream: FakeUpstream) -> None:
    messages = question()
    assert ask(plugin_gateway, tenants.alpha, messages, cache="no-store")[1] == "miss"
    assert ask(plugin_gateway, tenants.alpha, messages)[1] == "miss"  # nothing was stored
    _, state, request_id = ask(plugin_gateway, tenants.alpha, messages, cache="no-cache")
    assert state == "bypass" and upstream.requests(request_id)
    assert ask(plugin_gateway, tenants.alpha, messages)[1] == "hit"


def test_ttl_expiry(plugin_gateway: Gateway, tenants: Tenants) -> None:
    messages = question()
    assert ask(plugin_gateway, tenants.beta, messages, cache="ttl=1")[1] == "miss"
    assert ask(plugin_gateway, tenants.beta, messages, cache="use")[1] == "hit"
    time.sleep(1.0)
    deadline = time.monotonic() + WAIT_S
    while ask(plugin_gateway, tenants.beta, messages, cache="use, no-store")[1] == "hit":
        assert time.monotonic() < deadline, "the entry outlived its TTL"
        time.sleep(0.1)


def test_a_malformed_cache_header_is_a_400(plugin_gateway: Gateway, tenants: Tenants) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(plugin_gateway, tenants.alpha, question(), cache="ttl=soon")
    assert (caught.value.body["param"], caught.value.body["code"]) == (  # type: ignore[index]
        "x-gateway-cache", "invalid_cache_directive")


def test_ledger_row_of_a_hit(plugin_gateway: Gateway, tenants: Tenants) -> None:
    messages = question()
    _, _, miss_id = ask(plugin_gateway, tenants.alpha, messages)
    _, _, hit_id = ask(plugin_gateway, tenants.alpha, messages)
    miss, hit = ledger_row(plugin_gateway, miss_id), ledger_row(plugin_gateway, hit_id)
    assert miss["cache_hit"] == 0 and Decimal(miss["cost_usd"]) > 0
    assert (hit["cache_hit"], hit["status"], hit["prompt_tokens"], hit["completion_tokens"]) == (1, 200, 0, 0)
    assert Decimal(hit["cost_usd"]) == 0
    assert hit["deployment"] is None and hit["attempts"] == 0
    assert Decimal(json.loads(hit["tags"])["gateway.saved_usd"]) == Decimal(miss["cost_usd"])


def test_hits_are_counted_in_metrics(plugin_gateway: Gateway, tenants: Tenants) -> None:
    messages = question()
    ask(plugin_gateway, tenants.alpha, messages)
    ask(plugin_gateway, tenants.alpha, messages)
    text = httpx.get(plugin_gateway.base + "/metrics", headers=ADMIN).text
    assert 'llm_gateway_cache_lookups_total{model="chat",result="hit"}' in text


def test_anthropic_messages_hits_are_replayed_in_their_shape(plugin_gateway: Gateway, tenants: Tenants) -> None:
    client = anthropic.Anthropic(base_url=plugin_gateway.base, api_key=tenants.alpha.key, max_retries=0)
    messages = question()
    first = client.messages.with_raw_response.create(model="chat", max_tokens=100, messages=messages)  # type: ignore[arg-type]
    assert first.headers["x-gateway-cache"] == "miss"
    text = first.parse().content[0].text  # type: ignore[union-attr]
    again = client.messages.with_raw_response.create(model="chat", max_tokens=100, messages=messages)  # type: ignore[arg-type]
    assert again.headers["x-gateway-cache"] == "hit" and again.parse().content[0].text == text  # type: ignore[union-attr]
    with client.messages.stream(model="chat", max_tokens=100, messages=messages) as stream:  # type: ignore[arg-type]
        assert "".join(stream.text_stream) == text
        assert stream.get_final_message().stop_reason == "end_turn"
