"""The admin API's OpenAPI 3.1 document, built from the same pydantic models that validate requests."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from admin import schemas as s

_REF = "#/components/schemas/{model}"


@dataclass(frozen=True, slots=True)
class Op:
    method: str
    path: str
    id: str
    summary: str
    response: type[BaseModel]
    status: int = 200
    body: type[BaseModel] | None = None
    query: tuple[tuple[str, str, str], ...] = ()  # (name, JSON type, description)
    errors: tuple[int, ...] = (401, 403)


_PAGE = (("limit", "integer", "1 to 1000, default 100"), ("after", "string", "the last id of the previous page"))

OPERATIONS = (
    Op("post", "/teams", "createTeam", "Create a team", s.TeamOut, 201, s.TeamCreate, errors=(400, 401, 403, 409)),
    Op("get", "/teams", "listTeams", "List teams, oldest first", s.TeamList, query=_PAGE, errors=(400, 401, 403)),
    Op("get", "/teams/{team_id}", "getTeam", "Read a team", s.TeamOut, errors=(401, 403, 404)),
    Op("patch", "/teams/{team_id}", "updateTeam", "Change a team; null clears a cap", s.TeamOut, body=s.TeamUpdate,
       errors=(400, 401, 403, 404, 409)),
    Op("delete", "/teams/{team_id}", "deleteTeam", "Delete a team that has no unrevoked keys", s.TeamDeleted,
       errors=(401, 403, 404, 409)),
    Op("get", "/teams/{team_id}/spend", "getTeamSpend", "A team's limits and current spend", s.SpendReport,
       errors=(401, 403, 404)),
    Op("post", "/keys", "createKey", "Create a key; the response holds the full key, once", s.KeyWithSecret, 201,
       s.KeyCreate, errors=(400, 401, 403)),
    Op("get", "/keys", "listKeys", "List keys, oldest first", s.KeyList,
       query=(*_PAGE, ("team_id", "string", "only this team's keys"),
              ("include_revoked", "boolean", "default true")), errors=(400, 401, 403)),
    Op("get", "/keys/{key_id}", "getKey", "Read a key (never the key itself)", s.KeyOut, errors=(401, 403, 404)),
    Op("patch", "/keys/{key_id}", "updateKey", "Change a key; null clears a cap", s.KeyOut, body=s.KeyUpdate,
       errors=(400, 401, 403, 404)),
    Op("post", "/keys/{key_id}/rotate", "rotateKey",
       "Issue a new key for the same key id; the old one works until the grace period ends", s.RotatedKey,
       body=s.KeyRotate, errors=(400, 401, 403, 404, 409)),
    Op("post", "/keys/{key_id}/revoke", "revokeKey", "Revoke a key everywhere within a second", s.KeyOut,
       errors=(401, 403, 404)),
    Op("get", "/keys/{key_id}/spend", "getKeySpend", "A key's limits and current spend", s.SpendReport,
       errors=(401, 403, 404)),
    Op("get", "/audit", "listAudit", "The audit log, newest first", s.AuditList,
       query=(("limit", "integer", "1 to 1000, default 100"), ("before", "integer", "only entries older than this id"),
              ("target_type", "string", "key or team"), ("target_id", "string", "one key's or team's entries")),
       errors=(400, 401, 403)),
)

_ERRORS = {
    400: "Invalid input; `param` names the field. Nothing was written.",
    401: "No key, or a key that is unknown, revoked or expired.",
    403: "A valid key that is not an admin key.",
    404: "No such id.",
    409: "The change contradicts what is stored.",
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(op: Op) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in ("team_id", "key_id") if "{" + name + "}" in op.path
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": kind}, "description": text}
        for name, kind, text in op.query
    ]
    responses: dict[str, Any] = {
        str(op.status): {"description": op.summary, "content": _json({"$ref": _REF.format(model=op.response.__name__)})}
    }
    for status in op.errors:
        error = _json({"$ref": _REF.format(model="ErrorOut")})
        responses[str(status)] = {"description": _ERRORS[status], "content": error}
    operation: dict[str, Any] = {"operationId": op.id, "summary": op.summary, "parameters": parameters,
                                 "responses": responses}
    if op.body is not None:
        operation["requestBody"] = {
            "required": op.method == "post" and op.id.startswith("create"),
            "content": _json({"$ref": _REF.format(model=op.body.__name__)}),
        }
    return operation


@cache
def openapi_document() -> dict[str, Any]:
    models = {op.response for op in OPERATIONS} | {op.body for op in OPERATIONS if op.body} | {s.ErrorOut}
    _, definitions = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)], ref_template=_REF
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault("/admin/api" + op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "llm-gateway admin API", "version": "1",
                 "description": "Keys, teams, their limits and spend, and the audit log. "
                                "Authenticate with the master key or an admin key as a bearer token."},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
