"""`llm_gateway_team_info`: team names read from a real key store (the embedded SQLite one)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway.config.settings import Settings
from gateway.identity.access import Access
from gateway.identity.store.base import NewTeam
from gateway.observability.teams import NO_TEAM_NAME, TeamNames
from tests.observability.scrape import Scrape


@pytest.fixture
async def access(tmp_path: Path) -> AsyncIterator[Access]:
    a = Access(Settings(data_dir=str(tmp_path), master_key="sk-test-teams"))
    await a.start()
    yield a
    await a.close()


def info(names: TeamNames) -> dict[str, str]:
    registry = CollectorRegistry()
    registry.register(names)
    s = Scrape(generate_latest(registry).decode())
    assert {sample.value for sample in s.samples} == {1.0}
    return {labels["team"]: labels["team_name"] for labels in s.series("llm_gateway_team_info")}


async def test_names_follow_the_store_renames_and_deletions_included(access: Access) -> None:
    names = TeamNames(refresh_s=0)
    assert info(names) == {"none": NO_TEAM_NAME}  # no source yet: only requests without a team
    names.source = access
    research = await access.store.create_team(NewTeam("Research"), "test")
    ops = await access.store.create_team(NewTeam('Ops "night" shift'), "test")
    await names.refresh()
    assert info(names) == {"none": NO_TEAM_NAME, research.id: "Research", ops.id: 'Ops "night" shift'}

    await access.store.update_team(research.id, {"name": "Research & Dev"}, "test")
    await access.store.delete_team(ops.id, "test")
    await names.refresh()
    # Exactly the store's teams: the old name is gone, not left beside the new one.
    assert info(names) == {"none": NO_TEAM_NAME, research.id: "Research & Dev"}


async def test_names_are_read_again_only_when_stale(access: Access) -> None:
    names = TeamNames(refresh_s=3600)
    names.source = access
    team = await access.store.create_team(NewTeam("first"), "test")
    await names.refresh()
    await access.store.update_team(team.id, {"name": "second"}, "test")
    await names.refresh()  # within refresh_s: no read
    assert info(names)[team.id] == "first"


async def test_a_store_that_cannot_answer_in_time_leaves_the_last_names(access: Access) -> None:
    names = TeamNames(refresh_s=0)
    names.source = access
    team = await access.store.create_team(NewTeam("first"), "test")
    await names.refresh()
    await access.store.update_team(team.id, {"name": "second"}, "test")
    names.timeout_s = 0  # the store cannot answer in time: the scrape still answers, with what it had
    await names.refresh()
    assert info(names)[team.id] == "first"
    names.timeout_s = 2
    await names.refresh()
    assert info(names)[team.id] == "second"


async def test_teams_are_read_page_by_page(access: Access) -> None:
    names = TeamNames(refresh_s=0, page=3)
    names.source = access
    created = {(await access.store.create_team(NewTeam(f"t{i}"), "test")).id for i in range(7)}
    await names.refresh()
    assert set(info(names)) == created | {"none"}
