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

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from admin import params
from admin.api import by_method
from admin.inputs import MAX_ADMIN_BODY
from gateway.core.errors import InvalidRequest
from gateway.edge.body import read_body
from gateway.edge.responses import json_response
from gateway.identity.store.sql import Database
from gateway.prompts.store import Draft, PromptStore

P = "/admin/api/prompts"


async def _body(request: Request) -> dict[str, Any]:
    raw = (await read_body(request, MAX_ADMIN_BODY)).strip()
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest("The body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return body


def _number(raw: str | None, name: str) -> int:
    if raw is None or not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        raise InvalidRequest(f"'{name}' must be a version number.", param=name)
    return int(raw)


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
        body = await _body(request)
        template = await self.store().create(body.get("name"), Draft.of(body), actor)  # type: ignore[arg-type]
        return json_response(template.record(), 201)

    async def list(self, request: Request) -> Response:
        await self.authorize(request)
        return json_response({"object": "list", "data": [t.record() for t in await self.store().list()]})

    async def get(self, request: Request) -> Response:
        await self.authorize(request)
        return json_response((await self.store().get(request.path_params["template_id"])).record())

    async def add_version(self, request: Request) -> Response:
        actor = await self.authorize(request)
        version = await self.store().add_version(request.path_params["template_id"], Draft.of(await _body(request)),
                                                 actor)
        return json_response(version.record(), 201)

    async def get_version(self, request: Request) -> Response:
        await self.authorize(request)
        number = _number(request.path_params["version"], "version")
        return json_response((await self.store().version(request.path_params["template_id"], number)).record())

    async def set_label(self, request: Request) -> Response:
        actor = await self.authorize(request)
        version = (await _body(request)).get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidRequest("'version' must be a version number.", param="version")
        return json_response(await self.store().set_label(request.path_params["template_id"],
                                                          request.path_params["label"], version, actor))

    async def rollback(self, request: Request) -> Response:
        actor = await self.authorize(request)
        return json_response(await self.store().rollback(request.path_params["template_id"],
                                                         request.path_params["label"], actor))

    async def diff(self, request: Request) -> Response:
        await self.authorize(request)
        a = _number(request.query_params.get("from"), "from")
        b = _number(request.query_params.get("to"), "to")
        text = await self.store().diff(request.path_params["template_id"], a, b)
        return json_response({"object": "prompt_diff", "from": a, "to": b, "diff": text})

    async def stats(self, request: Request) -> Response:
        await self.authorize(request)
        template_id = request.path_params["template_id"]
        await self.store().get(template_id)  # 404 for an unknown template
        end = params.LAST_DAY.get(request, datetime.now(UTC).date())
        start = params.FIRST_DAY.get(request, end - timedelta(days=29))
        if start > end:
            raise InvalidRequest("'start' must not be after 'end'.", param="start")
        data = await version_stats(self.db(), template_id, datetime.combine(start, time(), UTC),
                                   datetime.combine(end + timedelta(days=1), time(), UTC), postgres=self.postgres)
        return json_response({"object": "prompt_stats", "template_id": template_id, "start": start.isoformat(),
                              "end": end.isoformat(), "data": data})


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
