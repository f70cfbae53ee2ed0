"""One contract for every store implementation (SQLite and PostgreSQL), run against each."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.core.types import BudgetPeriod, Limits
from gateway.identity.keys import new_key
from gateway.identity.store.base import Conflict, NewKey, NewTeam, UnknownReference
from gateway.identity.store.sql import SqlStore

ACTOR = "master"


def unique(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}"


async def audit_count(store: SqlStore, target_id: str) -> int:
    return len(await store.list_audit(target_id=target_id))


async def test_team_round_trip(store: SqlStore) -> None:
    limits = Limits(rpm=60, tpm=10_000, max_parallel=4, budget_usd=Decimal("12.345678"),
                    budget_period=BudgetPeriod.MONTHLY)
    created = await store.create_team(NewTeam(unique("team"), limits, {"owner": "ml", "n": [1, 2]}), ACTOR)
    assert created.id.startswith("team_")
    assert created.created_by == ACTOR
    fetched = await store.get_team(created.id)
    assert fetched == created
    assert fetched.limits.budget_usd == Decimal("12.345678")
    assert isinstance(fetched.limits.budget_usd, Decimal)
    assert fetched.limits.budget_period is BudgetPeriod.MONTHLY
    assert fetched.metadata == {"owner": "ml", "n": [1, 2]}
    assert fetched.created_at.tzinfo is not None
    assert await store.get_team("team_missing") is None


async def test_duplicate_team_name_is_a_conflict_and_writes_nothing(store: SqlStore) -> None:
    name = unique("dup")
    first = await store.create_team(NewTeam(name), ACTOR)
    before = await store.last_change()
    with pytest.raises(Conflict) as raised:
        await store.create_team(NewTeam(name), ACTOR)
    assert raised.value.field == "name"
    assert await store.last_change() == before
    assert [t.id for t in await store.list_teams(limit=10_000) if t.name == name] == [first.id]


async def test_concurrent_creates_of_one_name_leave_one_team(store: SqlStore) -> None:
    name = unique("race")
    results = await asyncio.gather(*(store.create_team(NewTeam(name), ACTOR) for _ in range(5)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))


async def test_update_team_records_the_difference(store: SqlStore) -> None:
    team = await store.create_team(NewTeam(unique("upd"), Limits(rpm=10)), ACTOR)
    updated = await store.update_team(team.id, {"rpm": None, "tpm": 500, "budget_usd": Decimal("3.5")}, "key:admin1")
    assert updated is not None
    assert updated.limits == Limits(tpm=500, budget_usd=Decimal("3.5"))
    assert updated.updated_at >= team.updated_at
    entry = (await store.list_audit(target_type="team", target_id=team.id))[0]
    assert entry.action == "team.update"
    assert entry.actor == "key:admin1"
    assert entry.details["changes"] == {
        "rpm": {"from": 10, "to": None}, "tpm": {"from": None, "to": 500}, "budget_usd": {"from": None, "to": "3.5"},
    }
    count = await audit_count(store, team.id)
    await store.update_team(team.id, {"tpm": 500}, ACTOR)  # changes nothing, records nothing
    assert await audit_count(store, team.id) == count
    assert await store.update_team("team_missing", {"tpm": 1}, ACTOR) is None


async def test_renaming_a_team_onto_another_name_is_a_conflict(store: SqlStore) -> None:
    a = await store.create_team(NewTeam(unique("a")), ACTOR)
    b = await store.create_team(NewTeam(unique("b")), ACTOR)
    with pytest.raises(Conflict):
        await store.update_team(b.id, {"name": a.name}, ACTOR)
    assert (await store.get_team(b.id)) == b
    renamed = await store.update_team(b.id, {"name": b.name + "-x"}, ACTOR)
    assert renamed is not None and renamed.name == b.name + "-x"


async def test_list_teams_pages_by_id(store: SqlStore) -> None:
    ids = sorted([(await store.create_team(NewTeam(unique("page")), ACTOR)).id for _ in range(3)])
    page = await store.list_teams(after=ids[0], limit=2)
    assert [t.id for t in page][:2] == ids[1:3]
    everything = [t.id for t in await store.list_teams(limit=10_000)]
    assert everything == sorted(everything)
    assert set(ids) <= set(everything)


async def test_delete_team_refuses_while_it_has_live_keys(store: SqlStore) -> None:
    team = await store.create_team(NewTeam(unique("del")), ACTOR)
    secret = new_key()
    key = await store.create_key(NewKey(name="k", team_id=team.id), secret.hash, secret.prefix, ACTOR)
    with pytest.raises(Conflict):
        await store.delete_team(team.id, ACTOR)
    assert await store.get_team(team.id) is not None
    await store.revoke_key(key.id, ACTOR)
    assert await store.delete_team(team.id, ACTOR) is True
    assert await store.get_team(team.id) is None
    orphan = await store.get_key(key.id)
    assert orphan is not None and orphan.team_id is None
    assert await store.delete_team(team.id, ACTOR) is False
    actions = [e.action for e in await store.list_audit(target_type="team", target_id=team.id)]
    assert actions == ["team.delete", "team.create"]


async def test_key_round_trip_and_lookup_by_hash(store: SqlStore) -> None:
    team = await store.create_team(NewTeam(unique("keys"), Limits(rpm=100, budget_usd=Decimal(50))), ACTOR)
    expires = datetime.now(UTC) + timedelta(days=1, microseconds=123)
    spec = NewKey(
        name="svc", team_id=team.id, allowed_models=("gpt-test", "other"), expires_at=expires,
        limits=Limits(rpm=5, tpm=1000, max_parallel=2, budget_usd=Decimal("0.000001"),
                      budget_period=BudgetPeriod.DAILY),
        metadata={"env": "prod"},
    )
    secret = new_key()
    key = await store.create_key(spec, secret.hash, secret.prefix, ACTOR)
    assert key.id.startswith("key_")
    assert key.prefix == secret.prefix
    assert key.allowed_models == ("gpt-test", "other")
    assert key.limits.budget_usd == Decimal("0.000001")
    assert key.expires_at == expires
    assert key.revoked_at is None and key.is_admin is False
    assert await store.get_key(key.id) == key

    match = await store.find_key(secret.hash)
    assert match is not None
    assert match.key == key
    assert match.team == team
    assert match.secret_expires_at is None
    assert await store.find_key(new_key().hash) is None

    created = (await store.list_audit(target_id=key.id))[0]
    assert created.action == "key.create"
    assert created.details["key"]["prefix"] == secret.prefix
    assert secret.hash not in str(created.details) and secret.key not in str(created.details)


async def test_key_without_team(store: SqlStore) -> None:
    secret = new_key()
    key = await store.create_key(NewKey(is_admin=True), secret.hash, secret.prefix, ACTOR)
    match = await store.find_key(secret.hash)
    assert match is not None and match.team is None and match.key.is_admin is True
    assert key.allowed_models is None and key.limits == Limits()


async def test_key_for_an_unknown_team_writes_nothing(store: SqlStore) -> None:
    before = await store.last_change()
    secret = new_key()
    with pytest.raises(UnknownReference) as raised:
        await store.create_key(NewKey(team_id="team_nope"), secret.hash, secret.prefix, ACTOR)
    assert raised.value.field == "team_id"
    assert await store.find_key(secret.hash) is None
    assert await store.last_change() == before


async def test_update_key(store: SqlStore) -> None:
    secret = new_key()
    key = await store.create_key(NewKey(name="u", allowed_models=("a",)), secret.hash, secret.prefix, ACTOR)
    team = await store.create_team(NewTeam(unique("move")), ACTOR)
    past = datetime.now(UTC) - timedelta(seconds=1)
    updated = await store.update_key(
        key.id, {"allowed_models": None, "team_id": team.id, "expires_at": past, "max_parallel": 3}, ACTOR
    )
    assert updated is not None
    assert (updated.allowed_models, updated.team_id, updated.expires_at) == (None, team.id, past)
    assert updated.limits.max_parallel == 3
    with pytest.raises(UnknownReference):
        await store.update_key(key.id, {"team_id": "team_nope"}, ACTOR)
    assert await store.update_key("key_missing", {"name": "x"}, ACTOR) is None
    change = (await store.list_audit(target_id=key.id))[0]
    assert change.action == "key.update"
    assert set(change.details["changes"]) == {"allowed_models", "team_id", "expires_at", "max_parallel"}


async def test_rotation_keeps_the_old_secret_for_the_grace_period(store: SqlStore) -> None:
    first = new_key()
    key = await store.create_key(NewKey(name="rot"), first.hash, first.prefix, ACTOR)
    second = new_key()
    grace = datetime.now(UTC) + timedelta(hours=1)
    rotated = await store.rotate_key(key.id, second.hash, second.prefix, grace, ACTOR)
    assert rotated is not None and rotated.prefix == second.prefix
    old, new = await store.find_key(first.hash), await store.find_key(second.hash)
    assert old is not None and new is not None
    assert old.key.id == new.key.id == key.id
    assert old.secret_expires_at == grace
    assert new.secret_expires_at is None

    # A second rotation with a longer grace does not extend the first secret.
    third = new_key()
    await store.rotate_key(key.id, third.hash, third.prefix, grace + timedelta(hours=5), ACTOR)
    again = await store.find_key(first.hash)
    assert again is not None and again.secret_expires_at == grace
    second_now = await store.find_key(second.hash)
    assert second_now is not None and second_now.secret_expires_at == grace + timedelta(hours=5)

    entry = (await store.list_audit(target_id=key.id))[0]
    assert (entry.action, entry.details["old_prefix"], entry.details["new_prefix"]) == (
        "key.rotate", second.prefix, third.prefix)
    assert await store.rotate_key("key_missing", new_key().hash, "sk-gw-x", grace, ACTOR) is None


async def test_revoke_is_idempotent_and_blocks_rotation(store: SqlStore) -> None:
    secret = new_key()
    key = await store.create_key(NewKey(name="rev"), secret.hash, secret.prefix, ACTOR)
    revoked = await store.revoke_key(key.id, "key:adm")
    assert revoked is not None and revoked.revoked_at is not None
    again = await store.revoke_key(key.id, ACTOR)
    assert again is not None and again.revoked_at == revoked.revoked_at
    actions = [(e.action, e.actor) for e in await store.list_audit(target_id=key.id)]
    assert actions == [("key.revoke", "key:adm"), ("key.create", ACTOR)]
    with pytest.raises(Conflict):
        await store.rotate_key(key.id, new_key().hash, "sk-gw-x", datetime.now(UTC), ACTOR)
    match = await store.find_key(secret.hash)
    assert match is not None and match.key.revoked_at is not None
    assert await store.revoke_key("key_missing", ACTOR) is None


async def test_list_keys_filters_and_pages(store: SqlStore) -> None:
    team = await store.create_team(NewTeam(unique("list")), ACTOR)
    keys = []
    for i in range(3):
        secret = new_key()
        keys.append(await store.create_key(NewKey(name=f"k{i}", team_id=team.id), secret.hash, secret.prefix, ACTOR))
    keys.sort(key=lambda k: k.id)  # ids sort by creation time to the millisecond only
    await store.revoke_key(keys[1].id, ACTOR)
    assert [k.id for k in await store.list_keys(team_id=team.id)] == [k.id for k in keys]
    assert [k.id for k in await store.list_keys(team_id=team.id, include_revoked=False)] == [keys[0].id, keys[2].id]
    assert [k.id for k in await store.list_keys(team_id=team.id, after=keys[0].id, limit=1)] == [keys[1].id]


async def test_audit_log_lists_newest_first_and_pages(store: SqlStore) -> None:
    team = await store.create_team(NewTeam(unique("audit")), ACTOR)
    for rpm in (1, 2, 3):
        await store.update_team(team.id, {"rpm": rpm}, ACTOR)
    entries = await store.list_audit(target_type="team", target_id=team.id)
    assert [e.action for e in entries] == ["team.update"] * 3 + ["team.create"]
    assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)
    assert await store.last_change() >= entries[0].id
    older = await store.list_audit(target_id=team.id, before=entries[1].id, limit=1)
    assert [e.id for e in older] == [entries[2].id]
    assert all(e.at.tzinfo is not None for e in entries)


async def test_money_finer_than_a_micro_dollar_is_refused(store: SqlStore) -> None:
    with pytest.raises(ValueError):
        await store.create_team(NewTeam(unique("money"), Limits(budget_usd=Decimal("0.0000001"))), ACTOR)
