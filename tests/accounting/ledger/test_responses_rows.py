"""`/v1/responses` through a real gateway on PostgreSQL (keys, ledger and stored responses): one
ledger row per call with `endpoint` = responses and the usage the client was told, translated and
native, unary and streamed; stored responses seen only by the team that made them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import openai
import pytest

from tests.accounting.ledger.conftest import PRICED
from tests.accounting.ledger.helpers import cost, wait_rows
from tests.procs import MASTER_KEY, Gateway


def rid() -> str:
    return "req_test_" + uuid.uuid4().hex


def sdk(gw: Gateway, key: str = MASTER_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)


@pytest.mark.parametrize("model", ["priced", "priced-native"])
@pytest.mark.parametrize("streamed", [False, True])
def test_each_call_is_one_row_with_real_usage(ledger_gateway: Gateway, ledger_dsn: str, model: str,
                                              streamed: bool) -> None:
    request_id = rid()
    client = sdk(ledger_gateway)
    headers = {"x-request-id": request_id}
    if streamed:
        with client.responses.stream(model=model, input="hello there world", extra_headers=headers) as stream:
            response = stream.get_final_response()
    else:
        response = client.responses.create(model=model, input="hello there world", extra_headers=headers)
    row = wait_rows(ledger_dsn, [request_id])[request_id]
    assert response.usage is not None and response.usage.output_tokens > 0
    assert (row["endpoint"], row["status"], row["stream"]) == ("responses", 200, streamed)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (response.usage.input_tokens,
                                                                 response.usage.output_tokens)
    assert row["tokens_estimated"] is False
    assert row["cost_usd"] == cost(PRICED, response.usage.input_tokens, response.usage.output_tokens)


def test_a_refused_call_is_a_responses_row_with_its_model(ledger_gateway: Gateway, ledger_dsn: str) -> None:
    request_id = rid()
    response = httpx.post(f"{ledger_gateway.url}/responses", json={"model": "priced", "input": 5},
                          headers={"Authorization": f"Bearer {MASTER_KEY}", "x-request-id": request_id})
    assert response.status_code == 400
    row = wait_rows(ledger_dsn, [request_id])[request_id]
    assert (row["endpoint"], row["status"], row["requested_model"]) == ("responses", 400, "priced")


def _team(admin: httpx.Client) -> str:
    created = admin.post("/teams", json={"name": "responses-" + uuid.uuid4().hex[:8]})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _team_key(admin: httpx.Client, team: str) -> str:
    key = admin.post("/keys", json={"team_id": team})
    assert key.status_code == 201, key.text
    body: dict[str, Any] = key.json()
    return str(body["key"])


def test_a_stored_response_belongs_to_its_team(ledger_gateway: Gateway) -> None:
    with httpx.Client(base_url=ledger_gateway.base + "/admin/api", timeout=10,
                      headers={"authorization": f"Bearer {MASTER_KEY}"}) as admin:
        team = _team(admin)
        mine, teammate = _team_key(admin, team), _team_key(admin, team)
        stranger = _team_key(admin, _team(admin))
    created = sdk(ledger_gateway, mine).responses.create(model="priced", input="alpha beta")
    # A key of the same team sees it and continues from it; another team's gets 404 everywhere.
    assert sdk(ledger_gateway, teammate).responses.retrieve(created.id).id == created.id
    follow = sdk(ledger_gateway, teammate).responses.create(model="priced-native", input="gamma",
                                                            previous_response_id=created.id)
    assert follow.output_text.split() == ["gamma"] * len(follow.output_text.split())
    other = sdk(ledger_gateway, stranger)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="priced", input="x", previous_response_id=created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(created.id)
    assert sdk(ledger_gateway, mine).responses.retrieve(created.id).id == created.id  # not deleted by them
