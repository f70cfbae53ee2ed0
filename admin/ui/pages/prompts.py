"""Prompt templates: the list, and a template's page (labels, versions side by side with their
requests, errors, spend and latency, a diff of two versions, moving a label and rolling it back)."""

from __future__ import annotations

import asyncio

from starlette.responses import Response

from admin.prompts_api import PromptsApi
from admin.ui.forms import Feedback
from admin.ui.prompt_form import ROLES, rows_of, template_body, version_body, version_form
from admin.ui.web import Ui, Visit
from gateway.core.errors import GatewayError


class Prompts:
    def __init__(self, ui: Ui, api: PromptsApi) -> None:
        self.ui = ui
        self.api = api

    async def list(self, visit: Visit, form: dict[str, str] | None = None, feedback: Feedback | None = None
                   ) -> Response:
        found = await self.ui.backend.get(visit.session, self.api.list)
        form = form or {"role_0": "system", "content_0": "", "role_1": "user", "content_1": ""}
        return self.ui.show(visit, "prompts.html", feedback.status if feedback else 200, templates=found["data"],
                            form=form, rows=rows_of(form, spare=0), roles=ROLES, feedback=feedback)

    async def create(self, visit: Visit) -> Response:
        try:
            template = await self.ui.backend.post(visit.session, self.api.create, template_body(visit.form))
        except GatewayError as exc:
            return await self.list(visit, visit.form, Feedback.of(exc))
        return self.ui.done(visit, f"/admin/prompts/{template['id']}", f"Template “{template['name']}” created.")

    async def add_version(self, visit: Visit) -> Response:
        template_id = visit.request.path_params["template_id"]
        try:
            version = await self.ui.backend.post(visit.session, self.api.add_version, version_body(visit.form),
                                                 template_id=template_id)
        except GatewayError as exc:
            if exc.status == 404 and exc.param == "id":
                raise
            return await self.show(visit, Feedback.of(exc), form=visit.form)
        return self.ui.done(visit, f"/admin/prompts/{template_id}", f"Version {version['version']} created.")

    async def show(self, visit: Visit, feedback: Feedback | None = None, form: dict[str, str] | None = None
                   ) -> Response:
        backend, session = self.ui.backend, visit.session
        template_id = visit.request.path_params["template_id"]
        template, stats = await asyncio.gather(backend.get(session, self.api.get, template_id=template_id),
                                               backend.get(session, self.api.stats, template_id=template_id))
        numbers = [v["version"] for v in template["versions"]]
        query = visit.request.query_params
        a, b = query.get("from"), query.get("to")
        if not (a and b) and len(numbers) >= 2:
            a, b = str(numbers[-2]), str(numbers[-1])
        diff = None
        if a and b:
            try:
                found = await backend.get(session, self.api.diff, {"from": a, "to": b}, template_id=template_id)
                diff = found["diff"]
            except GatewayError as exc:
                feedback = Feedback.of(exc)
        by_version = {s["version"]: s for s in stats["data"]}
        # The new version's form starts as the newest version, to be edited into the next one.
        draft = form if form is not None else version_form(template["versions"][-1])
        return self.ui.show(visit, "prompt.html", feedback.status if feedback else 200, prompt=template,
                            stats=by_version, diff=diff, diff_from=a, diff_to=b, feedback=feedback, draft=draft,
                            rows=rows_of(draft), roles=ROLES)

    async def label(self, visit: Visit) -> Response:
        template_id = visit.request.path_params["template_id"]
        label, version = visit.form.get("label", "").strip(), visit.form.get("version", "").strip()
        try:
            if visit.form.get("action") == "rollback":
                moved = await self.ui.backend.post(visit.session, self.api.rollback, None, template_id=template_id,
                                                   label=label)
            else:
                moved = await self.ui.backend.put(visit.session, self.api.set_label,
                                                  {"version": int(version) if version.isdigit() else version},
                                                  template_id=template_id, label=label)
        except GatewayError as exc:
            if exc.status == 404 and exc.param == "id":
                raise
            return await self.show(visit, Feedback.of(exc))
        return self.ui.done(visit, f"/admin/prompts/{template_id}",
                            f"Label “{moved['label']}” now points at version {moved['version']}.")
