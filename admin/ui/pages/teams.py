"""Teams: the list, creating one, and a team's page (its limits, keys and spend; edit, delete)."""

from __future__ import annotations

import asyncio

from starlette.responses import Response

from admin.ui import charts, formats
from admin.ui.budgets import budgets
from admin.ui.forms import Feedback, stored_values, team_body
from admin.ui.usage import Usage, today
from admin.ui.web import Ui, Visit
from gateway.core.errors import GatewayError

PAGE = 50


class Teams:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui

    async def list(self, visit: Visit, form: dict[str, str] | None = None, feedback: Feedback | None = None
                   ) -> Response:
        backend, session = self.ui.backend, visit.session
        after = visit.request.query_params.get("after") or None
        page, keys = await asyncio.gather(
            backend.get(session, backend.admin.list_teams, {"limit": PAGE, "after": after}),
            backend.get(session, backend.admin.list_keys, {"limit": 1000, "include_revoked": "false"}),
        )
        spend = await budgets(backend, session, "team", page["data"])
        key_counts: dict[str, int] = {}
        for key in keys["data"]:
            if key["team_id"]:
                key_counts[key["team_id"]] = key_counts.get(key["team_id"], 0) + 1
        return self.ui.show(visit, "teams.html", feedback.status if feedback else 200, teams=page["data"], spend=spend,
                            key_counts=key_counts, has_more=page["has_more"], last_id=page["last_id"],
                            form=form or {}, feedback=feedback)

    async def create(self, visit: Visit) -> Response:
        try:
            team = await self.ui.backend.post(visit.session, self.ui.backend.admin.create_team,
                                              team_body(visit.form, for_update=False))
        except GatewayError as exc:
            return await self.list(visit, visit.form, Feedback.of(exc))
        return self.ui.done(visit, f"/admin/teams/{team['id']}", f"Team “{team['name']}” created.")

    async def show(self, visit: Visit, form: dict[str, str] | None = None, feedback: Feedback | None = None
                   ) -> Response:
        backend, session = self.ui.backend, visit.session
        team_id = visit.request.path_params["team_id"]
        team = await backend.get(session, backend.admin.get_team, team_id=team_id)
        usage = Usage(backend, session)
        day = today()
        keys, by_key, spend = await asyncio.gather(
            backend.get(session, backend.admin.list_keys, {"team_id": team_id, "limit": 1000}),
            usage.grouped(day.replace(day=1), day, "key", team=team_id),
            budgets(backend, session, "team", [team]),
        )
        # The same figure per key as the Keys page shows (limiter or ledger, budgets.py), not another one.
        key_budgets = await budgets(backend, session, "key", keys["data"])
        names = {k["id"]: f"{k['name'] or k['id']} ({k['prefix']}…)" for k in keys["data"]}
        ranked = sorted(by_key.items(), key=lambda item: item[1].cost_usd, reverse=True)
        return self.ui.show(
            visit, "team.html", feedback.status if feedback else 200, team=team, keys=keys["data"],
            budget=spend[team_id], key_budgets=key_budgets, form=form or stored_values(team), feedback=feedback,
            chart=charts.bars([(names.get(k or "", k or "(none)"), v.cost_usd) for k, v in ranked[:8]], formats.usd,
                              title="Spend by key this month"),
        )

    async def update(self, visit: Visit) -> Response:
        team_id = visit.request.path_params["team_id"]
        try:
            team = await self.ui.backend.patch(visit.session, self.ui.backend.admin.update_team,
                                               team_body(visit.form, for_update=True), team_id=team_id)
        except GatewayError as exc:
            if exc.status == 404:
                raise
            return await self.show(visit, visit.form, Feedback.of(exc))
        return self.ui.done(visit, f"/admin/teams/{team_id}", f"Team “{team['name']}” saved.")

    async def delete(self, visit: Visit) -> Response:
        team_id = visit.request.path_params["team_id"]
        try:
            await self.ui.backend.delete(visit.session, self.ui.backend.admin.delete_team, team_id=team_id)
        except GatewayError as exc:
            if exc.status == 404:
                raise
            return await self.show(visit, None, Feedback.of(exc))
        return self.ui.done(visit, "/admin/teams", f"Team {team_id} deleted.")

