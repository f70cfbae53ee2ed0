"""Privacy: one end user's or key's data, downloaded as JSON Lines or erased (admins only)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import Response, StreamingResponse

from admin.privacy_api import PrivacyApi
from admin.ui.forms import Feedback
from admin.ui.web import Ui, Visit
from gateway.core.errors import GatewayError
from gateway.privacy.subject import subject_of


class Privacy:
    def __init__(self, ui: Ui, api: PrivacyApi) -> None:
        self.ui = ui
        self.api = api

    async def show(self, visit: Visit, feedback: Feedback | None = None, erased: dict[str, object] | None = None
                   ) -> Response:
        return self.ui.show(visit, "privacy.html", feedback.status if feedback else 200, feedback=feedback,
                            erased=erased, form=visit.form)

    async def act(self, visit: Visit) -> Response:
        kind, value = visit.form.get("kind", "user"), visit.form.get("id", "").strip()
        body = {"user": value} if kind == "user" else {"key": value}
        try:
            subject = subject_of(body.get("user"), body.get("key"))
            if visit.form.get("action") == "export":
                lines = self.api.privacy().export(subject, visit.session.actor)
                first = await anext(lines)

                async def stream() -> AsyncIterator[bytes]:
                    yield first
                    async for line in lines:
                        yield line

                return StreamingResponse(stream(), media_type="application/jsonl", headers={
                    "content-disposition": f'attachment; filename="export-{subject.kind}.jsonl"'})
            if visit.form.get("confirm") != "yes":
                unconfirmed = Feedback("Tick the box to confirm: an erasure cannot be undone.", "confirm")
                return await self.show(visit, unconfirmed)
            erased = await self.ui.backend.post(visit.session, self.api.erase, body)
        except GatewayError as exc:
            return await self.show(visit, Feedback.of(exc))
        return await self.show(visit, erased=erased)
