"""`llm_gateway_team_info{team, team_name}`: the team names the dashboards show, from the key store.

Metrics label teams by id (ids never change, names may). This info series, always 1, lets a
query put names beside them: `... * on (team) group_left (team_name) llm_gateway_team_info`.

It is not a prometheus_client Gauge: a renamed or deleted team would leave its old series in the
multiprocess files for good (the library cannot remove labels there). Instead the worker that
answers a scrape yields the names it last read, read again when older than `refresh_s`; so the
series are exactly the store's teams, whichever worker answers. Teams are made by operators, so
the series are as bounded as the `team` label already is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client.core import GaugeMetricFamily, Metric

from gateway.observability.labels import NONE

log = logging.getLogger("gateway.metrics")

NAME = "llm_gateway_team_info"
DOCUMENTATION = "A team's name, for joining onto series labelled by team id (always 1)."
# Requests with no team are labelled `none`: they get a name too, so a join keeps them.
NO_TEAM_NAME = "(no team)"


class TeamLister(Protocol):
    async def list_teams(self, *, after: str | None = None, limit: int = 100) -> list[Any]: ...


class TeamSource(Protocol):
    """gateway.identity.access.Access: its store exists once the app has started."""

    @property
    def started(self) -> bool: ...

    @property
    def store(self) -> TeamLister: ...


class TeamNames:
    def __init__(
        self, refresh_s: float = 30.0, timeout_s: float = 2.0, max_teams: int = 10_000, page: int = 500
    ) -> None:
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self.max_teams = max_teams
        self.page = page
        self.source: TeamSource | None = None
        self._names: dict[str, str] = {}
        self._next_read = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the names again if they are older than `refresh_s`; on failure keep the last ones."""
        source = self.source
        if source is None or not source.started or time.monotonic() < self._next_read:
            return
        async with self._lock:
            if time.monotonic() < self._next_read:
                return  # another scrape read them while this one waited
            try:
                async with asyncio.timeout(self.timeout_s):
                    self._names = await self._read(source.store)
            except Exception as exc:  # a store that is away must not fail the scrape
                log.warning("metrics: could not read team names (%s); keeping the last ones", type(exc).__name__)
            self._next_read = time.monotonic() + self.refresh_s

    async def _read(self, store: TeamLister) -> dict[str, str]:
        names: dict[str, str] = {}
        after: str | None = None
        while len(names) < self.max_teams:
            page = await store.list_teams(after=after, limit=self.page)
            names.update((team.id, team.name) for team in page)
            if len(page) < self.page:
                break
            after = page[-1].id
        return names

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(NAME, DOCUMENTATION, labels=["team", "team_name"])

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(NAME, DOCUMENTATION, labels=["team", "team_name"])
        family.add_metric([NONE, NO_TEAM_NAME], 1)
        for team_id, name in self._names.items():
            family.add_metric([team_id, name], 1)
        yield family
