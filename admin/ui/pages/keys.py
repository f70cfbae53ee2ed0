"""Keys: the list with spend and budget at a glance, creating one (its key shown once), and a key's
page (edit limits and models, rotate, revoke).

The full key appears in exactly one response: the page answering the create (or rotate) form,
sent with `no-store` so the browser keeps no copy. Nothing else, before or after, renders it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import Response

from admin.ui.budgets import budgets
from admin.ui.forms import Feedback, key_body, rotate_body, stored_values
from admin.ui.usage import Usage, today
from admin.ui.web import Ui, Visit
from gateway.core.errors import GatewayError

PAGE = 50


class Keys:
    def __init__(self, ui: Ui, models: list[str]) -> None:
        self.ui = ui
        self.models = models

    async def _teams(self, visit: Visit) -> list[dict[str, Any]]:
        page = await self.ui.backend.get(visit.session, self.ui.backend.admin.list_teams, {"limit": 1000})
        teams: list[dict[str, Any]] = page["data"]
        return teams

    async def list(self, visit: Visit, form: dict[str, str] | None = None, feedback: Feedback | None = None
                   ) -> Response:
        backend, session, query = self.ui.backend, visit.session, visit.request.query_params
        team_id = query.get("team_id") or None
        show_revoked = query.get("include_revoked") == "true"
        page, teams = await asyncio.gather(
            backend.get(session, backend.admin.list_keys, {"limit": PAGE, "after": query.get("after") or None,
                                                           "team_id": team_id,
                                                           "include_revoked": "true" if show_revoked else "false"}),
            self._teams(visit),
        )
        spend = await budgets(backend, session, "key", page["data"])
        return self.ui.show(
            visit, "keys.html", feedback.status if feedback else 200, keys=page["data"], spend=spend, teams=teams,
            team_names={t["id"]: t["name"] for t in teams}, team_id=team_id or "", show_revoked=show_revoked,
            has_more=page["has_more"], last_id=page["last_id"], models=self.models,
            form=form or {"team_id": team_id or ""}, feedback=feedback,
        )

    async def create(self, visit: Visit) -> Response:
        try:
            created = await self.ui.backend.post(visit.session, self.ui.backend.admin.create_key,
                                                 key_body(visit.form, for_update=False))
        except GatewayError as exc:
            return await self.list(visit, visit.form, Feedback.of(exc))
        return self.ui.show(visit, "key_secret.html", 201, key=created, secret=created["key"], rotated=None)

    async def show(self, visit: Visit, form: dict[str, str] | None = None, feedback: Feedback | None = None
                   ) -> Response:
        backend, session = self.ui.backend, visit.session
        key_id = visit.request.path_params["key_id"]
        key = await backend.get(session, backend.admin.get_key, key_id=key_id)
        day = today()
        teams, spend, by_model, audit = await asyncio.gather(
            self._teams(visit),
            budgets(backend, session, "key", [key]),
            Usage(backend, session).grouped(day.replace(day=1), day, "model", key=key_id),
            backend.get(session, backend.admin.list_audit, {"target_type": "key", "target_id": key_id, "limit": 20}),
        )
        values = form or {**stored_values(key), "allowed_models": ", ".join(key["allowed_models"] or []),
                          "expires_at": (key["expires_at"] or "")[:16], "is_admin": "on" if key["is_admin"] else ""}
        return self.ui.show(visit, "key.html", feedback.status if feedback else 200, key=key, teams=teams,
                            team_names={t["id"]: t["name"] for t in teams}, budget=spend[key_id],
                            by_model=sorted(by_model.items(), key=lambda i: i[1].cost_usd, reverse=True),
                            audit=audit["data"], models=self.models, form=values, feedback=feedback)

    async def update(self, visit: Visit) -> Response:
        key_id = visit.request.path_params["key_id"]
        try:
            key = await self.ui.backend.patch(visit.session, self.ui.backend.admin.update_key,
                                              key_body(visit.form, for_update=True), key_id=key_id)
        except GatewayError as exc:
            if exc.status == 404:
                raise
            return await self.show(visit, visit.form, Feedback.of(exc))
        return self.ui.done(visit, f"/admin/keys/{key_id}", f"Key “{key['name'] or key['id']}” saved.")

    async def rotate(self, visit: Visit) -> Response:
        key_id = visit.request.path_params["key_id"]
        try:
            rotated = await self.ui.backend.post(visit.session, self.ui.backend.admin.rotate_key,
                                                 rotate_body(visit.form), key_id=key_id)
        except GatewayError as exc:
            if exc.status == 404:
                raise
            return await self.show(visit, None, Feedback.of(exc))
        return self.ui.show(visit, "key_secret.html", 200, key=rotated, secret=rotated["key"],
                            rotated=rotated["previous_key_valid_until"])

    async def revoke(self, visit: Visit) -> Response:
        key_id = visit.request.path_params["key_id"]
        key = await self.ui.backend.post(visit.session, self.ui.backend.admin.revoke_key, key_id=key_id)
        return self.ui.done(visit, f"/admin/keys/{key_id}",
                            f"Key “{key['name'] or key['id']}” ({key['prefix']}…) revoked: it is refused from now on.")
