"""Stored responses: one contract over SQLite and PostgreSQL, and the sweep by `gateway db maintain`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from openai.types.responses import Response, ResponseItemList

from gateway.core.types import Principal
from gateway.dialects.responses.response import new_response_id, to_response
from gateway.dialects.responses.store import ResponseStore, owner_of
from gateway.identity.store.base import Conflict
from tests.dialects.responses.helpers import request
from tests.procs import MASTER_KEY

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ALICE = Principal(key_id="key_alice", key_prefix="sk-a", team_id="team_red")
ALICE_2 = Principal(key_id="key_alice2", key_prefix="sk-b", team_id="team_red")
BOB = Principal(key_id="key_bob", key_prefix="sk-c", team_id="team_blue")
LONER = Principal(key_id="key_loner", key_prefix="sk-d")


def answer(text: str, previous: str | None = None) -> dict[str, Any]:
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    body: dict[str, Any] = {"input": "q"} if previous is None else {"input": "q", "previous_response_id": previous}
    return to_response(completion, request(**body), new_response_id(), int(NOW.timestamp()))


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}], **extra}


async def test_round_trip(response_store: ResponseStore) -> None:
    response = answer("Hi.")
    items = [user("hello"), user("again", id="msg_client_given"),
             {"type": "function_call_output", "call_id": "c", "output": "x"}]
    stored = await response_store.put(ALICE, response, items, NOW, deployment="gpt/0", upstream_id="resp_up")
    fetched = await response_store.get(response["id"], owner_of(ALICE), NOW)
    assert fetched == stored
    assert fetched.response == response and Response.model_validate(fetched.response).output_text == "Hi."
    assert fetched.created_at == NOW and fetched.expires_at == NOW + timedelta(days=30)
    assert (fetched.owner, fetched.team_id, fetched.key_id) == ("team:team_red", "team_red", "key_alice")
    assert (fetched.deployment, fetched.upstream_id, fetched.model) == ("gpt/0", "resp_up", "m")
    ids = [item["id"] for item in fetched.input_items]
    token = response["id"].removeprefix("resp_")
    assert ids == [f"msg_{token}i0000", "msg_client_given", f"fco_{token}i0002"]
    with pytest.raises(Conflict):
        await response_store.put(ALICE, response, items, NOW)


async def test_only_the_owning_team_sees_a_response(response_store: ResponseStore) -> None:
    response = answer("secret")
    rid = response["id"]
    await response_store.put(ALICE, response, [user("q")], NOW)
    assert await response_store.get(rid, owner_of(ALICE_2), NOW) is not None  # the same team, another key
    for other in (BOB, LONER):
        owner = owner_of(other)
        assert await response_store.get(rid, owner, NOW) is None
        assert await response_store.conversation(rid, owner, NOW) is None
        assert await response_store.input_items(rid, owner, NOW) is None
        assert await response_store.delete(rid, owner, NOW) is False
    assert await response_store.get(rid, owner_of(ALICE), NOW) is not None
    lonely = answer("mine")
    await response_store.put(LONER, lonely, [user("q")], NOW)
    assert owner_of(LONER) == "key:key_loner"
    assert await response_store.get(lonely["id"], owner_of(ALICE), NOW) is None
    assert await response_store.get(lonely["id"], owner_of(LONER), NOW) is not None


async def test_a_conversation_is_the_chain_of_turns(response_store: ResponseStore) -> None:
    owner = owner_of(ALICE)
    first = answer("one")
    await response_store.put(ALICE, first, [user("q1")], NOW)
    second = answer("two", first["id"])
    await response_store.put(ALICE, second, [user("q2")], NOW, previous_response_id=first["id"])
    third = answer("three", second["id"])
    await response_store.put(ALICE, third, [user("q3")], NOW, previous_response_id=second["id"])
    items = await response_store.conversation(third["id"], owner, NOW)
    assert items is not None
    texts = [item["content"][0]["text"] for item in items]
    assert texts == ["q1", "one", "q2", "two", "q3", "three"]
    assert [item["type"] for item in items] == ["message"] * 6 and items[1] == first["output"][0]
    # A deleted turn in the middle ends the walk: what came before it went with it.
    assert await response_store.delete(second["id"], owner, NOW) is True
    assert await response_store.delete(second["id"], owner, NOW) is False
    items = await response_store.conversation(third["id"], owner, NOW)
    assert items is not None and [item["content"][0]["text"] for item in items] == ["q3", "three"]


async def test_input_items_pages(response_store: ResponseStore) -> None:
    response = answer("x")
    await response_store.put(ALICE, response, [user(f"q{i}") for i in range(5)], NOW)
    owner = owner_of(ALICE)
    page = await response_store.input_items(response["id"], owner, NOW, limit=2)
    assert page is not None and page.has_more
    listed = ResponseItemList.model_validate(page.body())
    assert [item.content[0].text for item in listed.data] == ["q4", "q3"]  # type: ignore[union-attr]
    assert listed.first_id == page.items[0]["id"] and listed.last_id == page.items[1]["id"]
    rest = await response_store.input_items(response["id"], owner, NOW, after=page.items[1]["id"], limit=10)
    assert rest is not None and not rest.has_more
    assert [item["content"][0]["text"] for item in rest.items] == ["q2", "q1", "q0"]
    ascending = await response_store.input_items(response["id"], owner, NOW, order="asc", limit=1)
    assert ascending is not None and ascending.items[0]["content"][0]["text"] == "q0"
    unknown = await response_store.input_items(response["id"], owner, NOW, after="msg_nope")
    assert unknown is not None and unknown.body() == {"object": "list", "data": [], "first_id": None,
                                                      "last_id": None, "has_more": False}


async def test_retention_hides_at_once_and_the_sweep_deletes(response_store: ResponseStore) -> None:
    old, new = answer("old"), answer("new")
    await response_store.put(ALICE, old, [user("q")], NOW - timedelta(days=31))
    await response_store.put(ALICE, new, [user("q")], NOW)
    owner = owner_of(ALICE)
    assert await response_store.get(old["id"], owner, NOW) is None
    assert await response_store.conversation(old["id"], owner, NOW) is None
    assert await response_store.get(old["id"], owner, NOW - timedelta(days=2)) is not None
    assert await response_store.sweep(NOW) >= 1
    assert await response_store.get(old["id"], owner, NOW - timedelta(days=2)) is None
    assert await response_store.get(new["id"], owner, NOW) is not None
    assert await response_store.sweep(NOW) == 0


def test_db_maintain_sweeps_expired_responses(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"settings": {"data_dir": str(tmp_path), "responses_retention_days": 1},
                                      "models": []}))
    expired = answer("old")

    async def store_one() -> None:
        from gateway.identity.store.sqlite import SqliteDatabase

        store = ResponseStore(await SqliteDatabase.open(tmp_path / "gateway.db"), timedelta(days=1))
        await store.put(ALICE, expired, [user("q")], datetime.now(UTC) - timedelta(days=2))
        await store.put(ALICE, answer("kept"), [user("q")], datetime.now(UTC))
        await store.db.close()

    asyncio.run(store_one())
    env = {"GATEWAY_MASTER_KEY": MASTER_KEY, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "gateway", "db", "maintain", "--config", str(config)]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "deleted 1 stored responses past the retention of 1 days" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert second.returncode == 0 and "stored responses" not in second.stdout
