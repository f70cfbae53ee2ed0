"""The audit log: who changed what and when, newest first, filtered by what was changed."""

from __future__ import annotations

from starlette.responses import Response

from admin.ui.forms import Feedback
from admin.ui.web import Ui, Visit
from gateway.core.errors import GatewayError

PAGE = 50


class Audit:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui

    async def list(self, visit: Visit) -> Response:
        query = visit.request.query_params
        filters = {name: query.get(name, "").strip() for name in ("target_type", "target_id", "before")}
        entries, has_more, last_id, feedback = [], False, None, None
        try:
            page = await self.ui.backend.get(visit.session, self.ui.backend.admin.list_audit,
                                             {"limit": PAGE, **{k: v or None for k, v in filters.items()}})
            entries, has_more, last_id = page["data"], page["has_more"], page["last_id"]
        except GatewayError as exc:
            if exc.status != 400:
                raise
            feedback = Feedback.of(exc)
        return self.ui.show(visit, "audit.html", feedback.status if feedback else 200, entries=entries, filters=filters,
                            has_more=has_more, last_id=last_id, feedback=feedback)
