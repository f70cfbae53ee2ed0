"""Guardrails and the exact cache on `/v1/responses`, through a real gateway: input items are read
as the neutral request's messages (also before a native relay), a translated stream's output goes
through the chunk hooks, a native answer's output too (unary, or its `output_text` deltas), and a
cache hit is a fresh stored response."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest

from tests.plugins.conftest import Tenants, client_for, ledger_row
from tests.plugins.test_guardrails import MASKED, PII_TEXT
from tests.procs import FakeUpstream, Gateway

NO_STORE = {"x-gateway-cache": "no-store"}
ANSWER = "the project aurora launch, then project aurora again"
MASKED_ANSWER = "the [REDACTED] launch, then [REDACTED] again"


def rid() -> str:
    return "req_resp_plug_" + uuid.uuid4().hex


def fake(**directives: Any) -> dict[str, Any]:
    return {"fake": directives}


@pytest.mark.parametrize("model", ["chat", "chat-native"])
def test_pii_in_input_items_is_masked_before_it_leaves(plugin_gateway: Gateway, tenants: Tenants,
                                                       upstream: FakeUpstream, model: str) -> None:
    request_id = rid()
    response = client_for(plugin_gateway, tenants.alpha).responses.create(
        model=model, input=[{"role": "user", "content": PII_TEXT}], extra_body=fake(content="fine"),
        extra_headers={"x-request-id": request_id, **NO_STORE})
    assert response.output_text == "fine"
    [sent] = upstream.requests(request_id)
    if model == "chat":
        assert sent["path"] == "/v1/chat/completions" and sent["body"]["messages"][0]["content"] == MASKED
    else:
        assert sent["path"] == "/v1/responses"
        assert PII_TEXT not in str(sent["body"]) and MASKED in str(sent["body"]["input"])
    assert "pii:request:" in ledger_row(plugin_gateway, request_id)["tags"]


def test_denied_term_in_input_is_refused(plugin_gateway: Gateway, tenants: Tenants) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(plugin_gateway, tenants.alpha).responses.create(model="chat", input="status of Project Aurora?")
    assert caught.value.body["code"] == "content_rule"  # type: ignore[index]


def test_denied_term_in_a_streamed_answer_is_masked(plugin_gateway: Gateway, tenants: Tenants) -> None:
    client = client_for(plugin_gateway, tenants.alpha)
    with client.responses.stream(model="chat", input="x", extra_headers=NO_STORE,
                                 extra_body=fake(content="the project aurora launch and more")) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert deltas == final.output_text == "the [REDACTED] launch and more"


def test_a_cache_hit_is_a_fresh_stored_response(plugin_gateway: Gateway, tenants: Tenants) -> None:
    client = client_for(plugin_gateway, tenants.alpha)
    question = "cache me " + uuid.uuid4().hex
    first = client.responses.with_raw_response.create(model="chat", input=question)
    second = client.responses.with_raw_response.create(model="chat", input=question)
    assert (first.headers["x-gateway-cache"], second.headers["x-gateway-cache"]) == ("miss", "hit")
    a, b = first.parse(), second.parse()
    assert a.output_text == b.output_text and a.id != b.id
    assert client.responses.retrieve(b.id).output_text == b.output_text
    with client.responses.stream(model="chat", input=question) as stream:
        replayed = stream.get_final_response()
    assert replayed.output_text == a.output_text and replayed.id not in (a.id, b.id)


def test_a_native_answer_goes_through_the_output_guardrails(plugin_gateway: Gateway, tenants: Tenants) -> None:
    client = client_for(plugin_gateway, tenants.alpha)
    request_id = rid()
    response = client.responses.create(model="chat-native", input="x", extra_body=fake(content=ANSWER),
                                        extra_headers={"x-request-id": request_id})
    assert response.output_text == MASKED_ANSWER
    # What is stored (and what a next turn replays) is what the client got.
    assert client.responses.retrieve(response.id).output_text == MASKED_ANSWER
    assert "content:response:deny:masked:2" in ledger_row(plugin_gateway, request_id)["tags"]


def test_a_native_stream_goes_through_the_chunk_hooks(plugin_gateway: Gateway, tenants: Tenants) -> None:
    client = client_for(plugin_gateway, tenants.alpha)
    request_id = rid()
    with client.responses.stream(model="chat-native", input="x", extra_body=fake(content=ANSWER),
                                 extra_headers={"x-request-id": request_id}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    [done] = [e for e in events if e.type == "response.output_text.done"]
    [item] = [e for e in events if e.type == "response.output_item.done"]
    assert deltas == done.text == final.output_text == MASKED_ANSWER
    assert item.item.content[0].text == MASKED_ANSWER  # type: ignore[union-attr]
    # One sequence, no gap and no repeat, though a held-back piece may have become a delta of its own.
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert client.responses.retrieve(final.id).output_text == MASKED_ANSWER
    assert "content:response:deny:masked:2" in ledger_row(plugin_gateway, request_id)["tags"]


def test_a_masked_native_turn_sends_the_history_once(plugin_gateway: Gateway, tenants: Tenants,
                                                    upstream: FakeUpstream) -> None:
    client = client_for(plugin_gateway, tenants.alpha)
    first = client.responses.create(model="chat-native", input="hello there", extra_headers=NO_STORE)
    request_id = rid()
    client.responses.create(model="chat-native", previous_response_id=first.id, input=PII_TEXT,
                            extra_headers={"x-request-id": request_id, **NO_STORE})
    [sent] = upstream.requests(request_id)
    said = [str(item.get("content")) for item in sent["body"]["input"] if item.get("role") == "user"]
    assert said == ["hello there", MASKED]
