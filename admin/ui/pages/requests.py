"""Requests: the ledger's rows, filtered by team, key, model, status and time, page by page, and
one row's details."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from starlette.responses import Response

from admin.ui.forms import Feedback, expiry
from admin.ui.web import Ui, Visit
from gateway.core.errors import GatewayError, NotFound

FILTERS = ("team", "key", "model", "status", "start", "end", "limit")
PAGE = 50


class Requests:
    def __init__(self, ui: Ui, models: list[str]) -> None:
        self.ui = ui
        self.models = models

    async def list(self, visit: Visit) -> Response:
        backend, session = self.ui.backend, visit.session
        query = visit.request.query_params
        filters = {name: query.get(name, "").strip() for name in FILTERS}
        ask: dict[str, str | int | None] = {name: value or None for name, value in filters.items()}
        # The form's `datetime-local` inputs say nothing of a zone: they mean UTC.
        ask["start"], ask["end"] = expiry(filters["start"]), expiry(filters["end"])
        ask["limit"] = filters["limit"] or PAGE
        ask["cursor"] = query.get("cursor") or None
        teams, keys = await asyncio.gather(
            backend.get(session, backend.admin.list_teams, {"limit": 1000}),
            backend.get(session, backend.admin.list_keys, {"limit": 1000}),
        )
        rows, next_cursor, feedback = [], None, None
        try:
            page = await backend.get(session, backend.ledger.requests, ask)
            rows, next_cursor = page["data"], page["next_cursor"]
        except GatewayError as exc:
            if exc.status != 400:
                raise
            feedback = Feedback.of(exc)
        shown = {k: v for k, v in filters.items() if v}
        return self.ui.show(
            visit, "requests.html", feedback.status if feedback else 200, rows=rows, filters=filters, shown=shown,
            next_cursor=next_cursor, first_page=not ask["cursor"], feedback=feedback, models=self.models,
            teams=teams["data"], keys=keys["data"], team_names={t["id"]: t["name"] for t in teams["data"]},
        )

    async def show(self, visit: Visit) -> Response:
        request_id = visit.request.path_params["request_id"]
        raw = visit.request.query_params.get("ts", "")
        try:
            ts = datetime.fromisoformat(raw)
            # The ledger reads rows by time: the microsecond the row was recorded at holds it.
            end = ts + timedelta(microseconds=1)
        except (ValueError, OverflowError):  # not a time, or the last microsecond there is
            raise NotFound("A request's page needs its time (`ts`), as the list links to it.", param="ts") from None
        page = await self.ui.backend.get(visit.session, self.ui.backend.ledger.requests,
                                         {"start": ts.isoformat(), "end": end.isoformat(), "limit": 1000})
        row = next((r for r in page["data"] if r["request_id"] == request_id), None)
        if row is None:
            raise NotFound(f"No request {request_id} at {raw} in the ledger.", param="request_id")
        return self.ui.show(visit, "request.html", row=row)
