"""Prompt templates under /admin/api/prompts: versions, labels, diffs, rollbacks, and spend per version.

    POST   /prompts                                 {name, messages, variables?, model?, params?, note?} -> 201
    GET    /prompts                                 every template (without versions)
    GET    /prompts/{id}                            the template, its versions and labels
    POST   /prompts/{id}/versions                   {messages, variables?, model?, params?, note?} -> 201
    GET    /prompts/{id}/versions/{version}
    PUT    /prompts/{id}/labels/{label}             {version}: the label moves there
    POST   /prompts/{id}/labels/{label}/rollback    back to where it pointed before its last move
    GET    /prompts/{id}/diff?from=1&to=2           a unified diff of two versions
    GET    /prompts/{id}/stats?start=&end=          requests, errors, spend and latency per version

Changes need an admin; every one is in the audit log (`target_type=prompt`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from admin import params
from admin.api import by_method
from admin.inputs import read_model
from admin.prompt_schemas import LabelMove, TemplateCreate, VersionDraft
from gateway.edge.responses import json_response
from gateway.identity.store.sql import Database
from gateway.prompts.store import Draft, PromptStore

P = "/admin/api/prompts"


class PromptsApi:
    def __init__(self, db: Callable[[], Database], postgres: bool, authorize: Callable[[Request], Awaitable[Any]]
                 ) -> None:
        self.db = db
        self.postgres = postgres
        self.authorize = authorize

    def store(self) -> PromptStore:
        return PromptStore(self.db())

    async def create(self, request: Request) -> Response:
        actor = await self.authorize(request)
        body = await read_model(request, TemplateCreate, required=True)
        template = await self.store().create(body.name, Draft.of(body.draft_fields()), actor)
        return json_response(template.record(), 201)

    async def list(self, request: Request) -> Response:
        await self.authorize(request)
        return json_response({"object": "list", "data": [t.record() for t in await self.store().list()]})

    async def get(self, request: Request) -> Response:
        await self.authorize(request)
        return json_response((await self.store().get(params.TEMPLATE_ID.get(request, ""))).record())

    async def add_version(self, request: Request) -> Response:
        actor = await self.authorize(request)
        template_id = params.TEMPLATE_ID.get(request, "")
        body = await read_model(request, VersionDraft, required=True)
        version = await self.store().add_version(template_id, Draft.of(body.draft_fields()), actor)
        return json_response(version.record(), 201)

    async def get_version(self, request: Request) -> Response:
        await self.authorize(request)
        template_id = params.TEMPLATE_ID.get(request, "")
        number = params.VERSION.get(request, 0)
        return json_response((await self.store().version(template_id, number)).record())

    async def set_label(self, request: Request) -> Response:
        actor = await self.authorize(request)
        template_id, label = params.TEMPLATE_ID.get(request, ""), params.LABEL.get(request, "")
        body = await read_model(request, LabelMove, required=True)
        return json_response(await self.store().set_label(template_id, label, body.version, actor))

    async def rollback(self, request: Request) -> Response:
        actor = await self.authorize(request)
        template_id, label = params.TEMPLATE_ID.get(request, ""), params.LABEL.get(request, "")
        return json_response(await self.store().rollback(template_id, label, actor))

    async def diff(self, request: Request) -> Response:
        await self.authorize(request)
        template_id = params.TEMPLATE_ID.get(request, "")
        a, b = params.DIFF_FROM.need(request), params.DIFF_TO.need(request)
        text = await self.store().diff(template_id, a, b)
        return json_response({"object": "prompt_diff", "from": a, "to": b, "diff": text})

    async def stats(self, request: Request) -> Response:
        await self.authorize(request)
        template_id = params.TEMPLATE_ID.get(request, "")
        await self.store().get(template_id)  # 404 for an unknown template
        start, end = params.day_range(request)
        data = await version_stats(self.db(), template_id, datetime.combine(start, time(), UTC),
                                   datetime.combine(end + timedelta(days=1), time(), UTC), postgres=self.postgres)
        return json_response({"object": "prompt_stats", "template_id": template_id, "start": start.isoformat(),
                              "end": params.LAST_DAY.get(request, end).isoformat(), "data": data})


async def version_stats(db: Database, template_id: str, since: datetime, until: datetime, *, postgres: bool
                        ) -> list[dict[str, Any]]:
    """Per version: requests, errors (as the ledger counts them), spend, mean and p95-free latency."""
    where = "template_id = $1 AND ts >= $2 AND ts < $3"
    errors = "sum(CASE WHEN error_type IS NOT NULL OR (status >= 400 AND status <> 499) THEN 1 ELSE 0 END)"
    async with db.reader() as tx:
        rows = await tx.fetch(
            f"SELECT template_version AS version, count(*) AS requests, {errors} AS errors, "
            "avg(latency_ms) AS latency_ms, sum(prompt_tokens) AS prompt_tokens, "
            "sum(completion_tokens) AS completion_tokens" + (", coalesce(sum(cost_usd), 0) AS cost_usd" if postgres
                                                             else "")
            + f" FROM ledger_requests WHERE {where} GROUP BY template_version ORDER BY template_version",
            template_id, since, until)
        costs: dict[int, Decimal] = {}
        if not postgres:
            for row in await tx.fetch(f"SELECT template_version AS version, cost_usd FROM ledger_requests "
                                      f"WHERE {where} AND cost_usd IS NOT NULL", template_id, since, until):
                costs[row["version"]] = costs.get(row["version"], Decimal(0)) + Decimal(row["cost_usd"])
    return [{"version": r["version"], "requests": int(r["requests"]), "errors": int(r["errors"] or 0),
             "error_rate": round(int(r["errors"] or 0) / int(r["requests"]), 4),
             "mean_latency_ms": round(float(r["latency_ms"]), 2), "prompt_tokens": int(r["prompt_tokens"] or 0),
             "completion_tokens": int(r["completion_tokens"] or 0),
             "cost_usd": str(Decimal(r["cost_usd"]) if postgres else costs.get(r["version"], Decimal(0)))}
            for r in rows]


def prompts_routes(api: PromptsApi) -> list[Route]:
    table = {
        P: {"GET": api.list, "POST": api.create},
        f"{P}/{{template_id}}": {"GET": api.get},
        f"{P}/{{template_id}}/versions": {"POST": api.add_version},
        f"{P}/{{template_id}}/versions/{{version}}": {"GET": api.get_version},
        f"{P}/{{template_id}}/labels/{{label}}": {"PUT": api.set_label},
        f"{P}/{{template_id}}/labels/{{label}}/rollback": {"POST": api.rollback},
        f"{P}/{{template_id}}/diff": {"GET": api.diff},
        f"{P}/{{template_id}}/stats": {"GET": api.stats},
    }
    return [by_method(path, handlers) for path, handlers in table.items()]
