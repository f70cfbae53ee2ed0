"""The JSON admin API under /admin/api/: keys, teams, their limits and spend, and the audit log.

Authenticated by the master key or an admin key. Every change is written with its audit row
in one transaction, then announced so every worker's key cache forgets what it knew. The
full key appears in exactly two responses (create and rotate) and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from admin import params
from admin.inputs import read_model
from admin.openapi import openapi_document
from admin.schemas import KeyCreate, KeyRotate, KeyUpdate, TeamCreate, TeamUpdate
from admin.served import ServedModels
from gateway.core.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from gateway.core.types import Limits
from gateway.edge.responses import json_response
from gateway.identity.access import Access
from gateway.identity.auth import KeyAuth, client_address
from gateway.identity.keys import new_key
from gateway.identity.store import base
from gateway.identity.store.base import ApiKey, NewKey, NewTeam, SpendReader, Team
from gateway.identity.store.plain import key_record, limits_record, plain, team_record

log = logging.getLogger("gateway.admin")

Handler = Callable[[Request], Awaitable[Response]]

# The admin UI (admin/ui/backend.py) calls these handlers in-process for a signed-in user: it puts
# (actor, role) in the scope under this key, which nothing an HTTP client sends can set.
UI_SESSION = "gateway.admin_ui_session"


def _team(team: Team) -> dict[str, Any]:
    return {"object": "team", **team_record(team)}


def _key(key: ApiKey) -> dict[str, Any]:
    return {"object": "api_key", **key_record(key)}


def _page(items: Sequence[Any], limit: int, view: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    data = [view(item) for item in items[:limit]]
    return {
        "object": "list",
        "data": data,
        "has_more": len(items) > limit,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


class AdminApi:
    def __init__(self, access: Access, auth: KeyAuth, spend: SpendReader, rotation_grace_s: float,
                 models: ServedModels) -> None:
        self.access = access
        self.auth = auth
        self.spend = spend
        self.rotation_grace_s = rotation_grace_s
        # `allowed_models` may name only what the gateway serves: anything else is a typo.
        self._context = {"served": models}
        self._openapi = orjson.dumps(openapi_document(models))

    async def authorize(self, request: Request) -> str:
        """The actor the audit log names ('master' or 'key:<id>'); 401/403 for anyone else."""
        signed_in = request.scope.get(UI_SESSION)
        if signed_in is not None:
            actor, role = signed_in
            if role != "admin" and request.method not in ("GET", "HEAD"):
                raise PermissionDenied("A viewer may look but not change anything.")
            return str(actor)
        principal, is_admin = await self.auth.identify(request.headers, client_address(request))
        if not is_admin:
            raise PermissionDenied("This key may not use the admin API: use the master key or an admin key.")
        return "master" if principal.is_master else f"key:{principal.key_id}"

    async def _changed(self, actor: str, action: str, kind: str, target_id: str) -> None:
        log.info("admin %s %s by %s", action, target_id, actor)
        await self.access.changed(kind, target_id)

    # Teams

    async def create_team(self, request: Request) -> Response:
        actor = await self.authorize(request)
        body = await read_model(request, TeamCreate, required=True)
        try:
            team = await self.access.store.create_team(NewTeam(body.name, body.limits(), body.metadata), actor)
        except base.Conflict as exc:
            raise Conflict(exc.message, param=exc.field) from None
        log.info("admin team.create %s by %s", team.id, actor)
        return json_response(_team(team), 201)

    async def list_teams(self, request: Request) -> Response:
        await self.authorize(request)
        limit = params.LIMIT.get(request, 100)
        teams = await self.access.store.list_teams(after=params.AFTER.read(request), limit=limit + 1)
        return json_response(_page(teams, limit, _team))

    async def get_team(self, request: Request) -> Response:
        await self.authorize(request)
        return json_response(_team(await self._find_team(request)))

    async def _find_team(self, request: Request) -> Team:
        team = await self.access.store.get_team(params.TEAM_ID.get(request, ""))
        if team is None:
            raise NotFound("No team with that id.", param="team_id")
        return team

    async def update_team(self, request: Request) -> Response:
        actor = await self.authorize(request)
        team_id = params.TEAM_ID.get(request, "")
        body = await read_model(request, TeamUpdate)
        try:
            team = await self.access.store.update_team(team_id, body.changes(), actor)
        except base.Conflict as exc:
            raise Conflict(exc.message, param=exc.field) from None
        if team is None:
            raise NotFound("No team with that id.", param="team_id")
        await self._changed(actor, "team.update", "team", team_id)
        return json_response(_team(team))

    async def delete_team(self, request: Request) -> Response:
        actor = await self.authorize(request)
        team_id = params.TEAM_ID.get(request, "")
        try:
            deleted = await self.access.store.delete_team(team_id, actor)
        except base.Conflict as exc:
            raise Conflict(exc.message) from None
        if not deleted:
            raise NotFound("No team with that id.", param="team_id")
        await self._changed(actor, "team.delete", "team", team_id)
        return json_response({"object": "team.deleted", "id": team_id, "deleted": True})

    async def team_spend(self, request: Request) -> Response:
        await self.authorize(request)
        team = await self._find_team(request)
        return json_response(await self._spend("team", team.id, team.limits))

    # Keys

    async def create_key(self, request: Request) -> Response:
        actor = await self.authorize(request)
        body = await read_model(request, KeyCreate, required=True, context=self._context)
        _future(body.expires_at)
        spec = NewKey(
            name=body.name, team_id=body.team_id, is_admin=body.is_admin,
            allowed_models=None if body.allowed_models is None else tuple(body.allowed_models),
            limits=body.limits(), expires_at=body.expires_at, metadata=body.metadata,
        )
        secret = new_key()
        try:
            key = await self.access.store.create_key(spec, secret.hash, secret.prefix, actor)
        except base.UnknownReference as exc:
            raise InvalidRequest(exc.message, param=exc.field, code="invalid_value") from None
        log.info("admin key.create %s (%s…) by %s", key.id, key.prefix, actor)
        return json_response({**_key(key), "key": secret.key}, 201)

    async def list_keys(self, request: Request) -> Response:
        await self.authorize(request)
        limit = params.LIMIT.get(request, 100)
        keys = await self.access.store.list_keys(
            team_id=params.KEYS_OF_TEAM.read(request),
            include_revoked=params.INCLUDE_REVOKED.get(request, True),
            after=params.AFTER.read(request),
            limit=limit + 1,
        )
        return json_response(_page(keys, limit, _key))

    async def get_key(self, request: Request) -> Response:
        await self.authorize(request)
        return json_response(_key(await self._find_key(request)))

    async def _find_key(self, request: Request) -> ApiKey:
        key = await self.access.store.get_key(params.KEY_ID.get(request, ""))
        if key is None:
            raise NotFound("No key with that id.", param="key_id")
        return key

    async def update_key(self, request: Request) -> Response:
        actor = await self.authorize(request)
        key_id = params.KEY_ID.get(request, "")
        body = await read_model(request, KeyUpdate, context=self._context)
        changes = body.changes()
        if changes.get("allowed_models") is not None:
            changes["allowed_models"] = tuple(changes["allowed_models"])
        try:
            key = await self.access.store.update_key(key_id, changes, actor)
        except base.UnknownReference as exc:
            raise InvalidRequest(exc.message, param=exc.field, code="invalid_value") from None
        if key is None:
            raise NotFound("No key with that id.", param="key_id")
        await self._changed(actor, "key.update", "key", key_id)
        return json_response(_key(key))

    async def rotate_key(self, request: Request) -> Response:
        actor = await self.authorize(request)
        key_id = params.KEY_ID.get(request, "")
        body = await read_model(request, KeyRotate)
        grace = self.rotation_grace_s if body.grace_seconds is None else body.grace_seconds
        secret = new_key()
        grace_until = datetime.now(UTC) + timedelta(seconds=grace)
        try:
            key = await self.access.store.rotate_key(key_id, secret.hash, secret.prefix, grace_until, actor)
        except base.Conflict as exc:
            raise Conflict(exc.message) from None
        if key is None:
            raise NotFound("No key with that id.", param="key_id")
        await self._changed(actor, "key.rotate", "key", key_id)
        return json_response({**_key(key), "key": secret.key, "previous_key_valid_until": plain(grace_until)})

    async def revoke_key(self, request: Request) -> Response:
        actor = await self.authorize(request)
        key = await self.access.store.revoke_key(params.KEY_ID.get(request, ""), actor)
        if key is None:
            raise NotFound("No key with that id.", param="key_id")
        await self._changed(actor, "key.revoke", "key", key.id)
        return json_response(_key(key))

    async def key_spend(self, request: Request) -> Response:
        await self.authorize(request)
        key = await self._find_key(request)
        return json_response(await self._spend("key", key.id, key.limits))

    async def _spend(self, scope: Literal["key", "team"], target_id: str, limits: Limits) -> dict[str, Any]:
        spend = await self.spend.current(scope, target_id, limits)
        return {
            "object": "spend",
            "scope": scope,
            "id": target_id,
            "limits": limits_record(limits),
            "spend": None if spend is None else plain({
                "spent_usd": spend.spent_usd, "period_start": spend.period_start,
                "period_end": spend.period_end, "extra": spend.extra,
            }),
        }

    # Audit log

    async def list_audit(self, request: Request) -> Response:
        await self.authorize(request)
        limit = params.LIMIT.get(request, 100)
        entries = await self.access.store.list_audit(
            target_type=params.TARGET_TYPE.read(request), target_id=params.TARGET_ID.read(request),
            before=params.BEFORE.read(request), limit=limit + 1,
        )  # fmt: skip
        return json_response(_page(entries, limit, lambda e: {"object": "audit_entry", **plain(asdict(e))}))

    async def openapi(self, request: Request) -> Response:
        return Response(self._openapi, media_type="application/json")


def _future(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidRequest("Invalid value for 'expires_at': must be in the future.", param="expires_at",
                             code="invalid_value")


def admin_routes(api: AdminApi) -> list[Route]:
    """The whole admin route table: one route per path, so a wrong method is answered with every right one."""
    p = "/admin/api"
    table: dict[str, dict[str, Handler]] = {
        f"{p}/openapi.json": {"GET": api.openapi},
        f"{p}/teams": {"GET": api.list_teams, "POST": api.create_team},
        f"{p}/teams/{{team_id}}": {"GET": api.get_team, "PATCH": api.update_team, "DELETE": api.delete_team},
        f"{p}/teams/{{team_id}}/spend": {"GET": api.team_spend},
        f"{p}/keys": {"GET": api.list_keys, "POST": api.create_key},
        f"{p}/keys/{{key_id}}": {"GET": api.get_key, "PATCH": api.update_key},
        f"{p}/keys/{{key_id}}/rotate": {"POST": api.rotate_key},
        f"{p}/keys/{{key_id}}/revoke": {"POST": api.revoke_key},
        f"{p}/keys/{{key_id}}/spend": {"GET": api.key_spend},
        f"{p}/audit": {"GET": api.list_audit},
    }
    return [by_method(path, handlers) for path, handlers in table.items()]


def by_method(path: str, handlers: Mapping[str, Handler]) -> Route:
    """One route for all of a path's methods, so that a 405 names them all in `Allow`."""

    async def endpoint(request: Request) -> Response:
        return await handlers["GET" if request.method == "HEAD" else request.method](request)

    return Route(path, endpoint, methods=list(handlers))
