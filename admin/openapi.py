"""The admin API's OpenAPI 3.1 document, made from the objects that validate requests.

Bodies are the pydantic models of admin/schemas.py and parameters the `Param`s of
admin/params.py, so the document states what the handlers enforce. Two parts pydantic cannot
state are filled in here: `metadata`'s values (a recursive schema) and the model names
`allowed_models` may hold (they depend on the configured models). Rules no JSON Schema can
state (an expiry in the future, `start` before `end`, a team that exists, a cursor this API
returned) are in the operations' descriptions; each breach of them is a 400 naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from admin import params as p
from admin import prompt_schemas as ps
from admin import report_schemas as rs
from admin import schemas as s
from admin.inputs import NO_NUL, Param, metadata_schema
from admin.served import ServedModels

_REF = "#/components/schemas/{model}"
_ALWAYS = (401, 403, 429, 503)


@dataclass(frozen=True, slots=True)
class Op:
    method: str
    path: str
    id: str
    summary: str
    response: type[BaseModel]
    status: int = 200
    body: type[BaseModel] | None = None
    params: tuple[Param[Any], ...] = ()
    errors: tuple[int, ...] = ()
    csv: bool = False  # `format=csv` answers text/csv
    media: str = "application/json"  # what a success is, when not JSON: a string of that type
    needs_body: bool = False  # besides every create: an empty body is a 400
    rules: str = ""  # what a schema cannot say


_LIST = (p.LIMIT, p.AFTER)
_PLACEHOLDERS = ("`variables` must name exactly the `{{name}}` placeholders the messages use (left out, it is "
                 "those).")
_TEAM_EXISTS = "`team_id` must name an existing team."

OPERATIONS = (
    Op("post", "/teams", "createTeam", "Create a team", s.TeamOut, 201, s.TeamCreate, errors=(409,)),
    Op("get", "/teams", "listTeams", "List teams, oldest first", s.TeamList, params=_LIST),
    Op("get", "/teams/{team_id}", "getTeam", "Read a team", s.TeamOut, params=(p.TEAM_ID,), errors=(404,)),
    Op("patch", "/teams/{team_id}", "updateTeam", "Change a team; null clears a cap", s.TeamOut, body=s.TeamUpdate,
       params=(p.TEAM_ID,), errors=(404, 409)),
    Op("delete", "/teams/{team_id}", "deleteTeam", "Delete a team that has no unrevoked keys", s.TeamDeleted,
       params=(p.TEAM_ID,), errors=(404, 409)),
    Op("get", "/teams/{team_id}/spend", "getTeamSpend", "A team's limits and current spend", s.SpendReport,
       params=(p.TEAM_ID,), errors=(404,)),
    Op("post", "/keys", "createKey", "Create a key; the response holds the full key, once", s.KeyWithSecret, 201,
       s.KeyCreate, rules=f"`expires_at` must be in the future. {_TEAM_EXISTS}"),
    Op("get", "/keys", "listKeys", "List keys, oldest first", s.KeyList,
       params=(*_LIST, p.KEYS_OF_TEAM, p.INCLUDE_REVOKED)),
    Op("get", "/keys/{key_id}", "getKey", "Read a key (never the key itself)", s.KeyOut, params=(p.KEY_ID,),
       errors=(404,)),
    Op("patch", "/keys/{key_id}", "updateKey", "Change a key; null clears a cap", s.KeyOut, body=s.KeyUpdate,
       params=(p.KEY_ID,), errors=(404,), rules=f"{_TEAM_EXISTS} A past `expires_at` expires the key at once."),
    Op("post", "/keys/{key_id}/rotate", "rotateKey",
       "Issue a new key for the same key id; the old one works until the grace period ends", s.RotatedKey,
       body=s.KeyRotate, params=(p.KEY_ID,), errors=(404, 409)),
    Op("post", "/keys/{key_id}/revoke", "revokeKey", "Revoke a key everywhere within a second", s.KeyOut,
       params=(p.KEY_ID,), errors=(404,)),
    Op("get", "/keys/{key_id}/spend", "getKeySpend", "A key's limits and current spend", s.SpendReport,
       params=(p.KEY_ID,), errors=(404,)),
    Op("get", "/audit", "listAudit", "The audit log, newest first", s.AuditList,
       params=(p.LIMIT, p.BEFORE, p.TARGET_TYPE, p.TARGET_ID)),
    Op("get", "/ledger/spend", "getLedgerSpend", "Spend from the cost ledger over whole days, grouped",
       s.LedgerSpend, params=(p.FIRST_DAY, p.LAST_DAY, p.GROUP_BY, p.TEAM, p.KEY, p.TEAMS, p.KEYS, p.MODEL,
               p.PROVIDER, p.FORMAT),
       csv=True, rules="`start` must not be after `end`, and the range may span at most 3660 days."),
    Op("get", "/ledger/requests", "listLedgerRequests", "The cost ledger's rows, newest first", s.LedgerRows,
       params=(p.FROM, p.UNTIL, p.TEAM, p.KEY, p.MODEL, p.STATUS, p.ROWS, p.CURSOR, p.FORMAT), csv=True,
       rules="`start` must not be after `end`, and the range may span at most 3660 days; `cursor` must be a "
             "`next_cursor` this API returned."),
    Op("get", "/ledger/status", "getLedgerStatus", "The ledger writer's counters", s.LedgerStatus),
    Op("post", "/privacy/export", "exportSubject",
       "Everything the gateway holds about one end user or key: JSON Lines, a manifest first", s.ErrorOut,
       body=rs.SubjectBody, media="application/jsonl", needs_body=True,
       rules="Name exactly one of `user` and `key`. Needs an admin: a viewer of the admin UI may not."),
    Op("post", "/privacy/erase", "eraseSubject",
       "Erase one end user's or key's data everywhere; the counts per source", rs.ErasureOut,
       body=rs.SubjectBody, needs_body=True,
       rules="Name exactly one of `user` and `key`. Needs an admin: a viewer of the admin UI may not."),
    Op("post", "/prompts", "createPrompt", "Create a prompt template with its version 1", ps.TemplateOut, 201,
       ps.TemplateCreate, errors=(409,), rules=_PLACEHOLDERS),
    Op("get", "/prompts", "listPrompts", "Every prompt template, by name (without versions)", ps.TemplateList),
    Op("get", "/prompts/{template_id}", "getPrompt", "A template, its versions and labels", ps.TemplateOut,
       params=(p.TEMPLATE_ID,), errors=(404,)),
    Op("post", "/prompts/{template_id}/versions", "createPromptVersion", "Add a version (versions never change)",
       ps.VersionOut, 201, ps.VersionDraft, params=(p.TEMPLATE_ID,), errors=(404,), rules=_PLACEHOLDERS),
    Op("get", "/prompts/{template_id}/versions/{version}", "getPromptVersion", "One version", ps.VersionOut,
       params=(p.TEMPLATE_ID, p.VERSION), errors=(404,)),
    Op("put", "/prompts/{template_id}/labels/{label}", "movePromptLabel",
       "Point a label at a version (created if new); it remembers where it pointed", ps.LabelMoved,
       body=ps.LabelMove, params=(p.TEMPLATE_ID, p.LABEL), errors=(404,), needs_body=True),
    Op("post", "/prompts/{template_id}/labels/{label}/rollback", "rollBackPromptLabel",
       "Move a label back to where it pointed before its last move", ps.LabelMoved,
       params=(p.TEMPLATE_ID, p.LABEL), errors=(404, 409),
       rules="409 when the label has never been moved (or does not exist)."),
    Op("get", "/prompts/{template_id}/diff", "diffPromptVersions", "A unified diff of two versions", ps.PromptDiff,
       params=(p.TEMPLATE_ID, p.DIFF_FROM, p.DIFF_TO), errors=(404,)),
    Op("get", "/prompts/{template_id}/stats", "getPromptStats",
       "Requests, errors, spend and latency per version, from the ledger", ps.PromptStats,
       params=(p.TEMPLATE_ID, p.FIRST_DAY, p.LAST_DAY), errors=(404,), rules="`start` must not be after `end`."),
    Op("get", "/routing/complexity", "getComplexityReport",
       "A `complexity` model's requests and spend by tier, and what its top tier would have cost",
       rs.ComplexityReport, params=(p.COMPLEXITY_MODEL, p.FIRST_DAY, p.LAST_DAY),
       rules="`start` must not be after `end`, and the range may span at most 3660 days."),
    Op("get", "/forecasts", "listForecasts", "Every budget's projected spend at its period's end", rs.ForecastList),
    Op("get", "/recommendations", "listRecommendations",
       "Cheaper deployments, exact repeats a cache would answer, idle keys: each with the money at stake",
       rs.Recommendations, params=(p.REC_DAYS, p.MIN_REQUESTS, p.MAX_ERROR_RATE_INCREASE, p.MAX_LATENCY_RATIO,
                                   p.CACHE_TTL, p.IDLE_WEEKS)),
)

_ERRORS = {
    400: "Invalid input; `param` names the field. Nothing was written.",
    401: "No key, or a key that is unknown, revoked or expired.",
    403: "A valid key that is not an admin key.",
    404: "No such id.",
    409: "The change contradicts what is stored.",
    413: "The body is larger than 256 KiB.",
    429: "Too many failed sign-ins from this address or for this key: retry after `retry-after` seconds.",
    503: "A store the gateway needs is unreachable.",
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _parameter(param: Param[Any]) -> dict[str, Any]:
    return {"name": param.name, "in": param.where, "required": param.where == "path" or param.required,
            "schema": param.schema, "description": param.description}


def _operation(op: Op) -> dict[str, Any]:
    content = _json({"$ref": _REF.format(model=op.response.__name__)})
    if op.media != "application/json":
        content = {op.media: {"schema": {"type": "string"}}}
    if op.csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    responses: dict[str, Any] = {str(op.status): {"description": op.summary, "content": content}}
    statuses = {*op.errors, *_ALWAYS}
    if op.params or op.body is not None:
        statuses.add(400)
    if op.body is not None:
        statuses.add(413)
    error = _json({"$ref": _REF.format(model="ErrorOut")})
    for status in sorted(statuses):
        responses[str(status)] = {"description": _ERRORS[status], "content": error}
    operation: dict[str, Any] = {"operationId": op.id, "summary": op.summary,
                                 "parameters": [_parameter(param) for param in op.params], "responses": responses}
    if op.rules:
        operation["description"] = op.rules
    if op.body is not None:
        operation["requestBody"] = {
            "required": op.needs_body or (op.method == "post" and op.id.startswith("create")),
            "content": _json({"$ref": _REF.format(model=op.body.__name__)}),
        }
    return operation


def openapi_document(served: ServedModels) -> dict[str, Any]:
    models = ({op.response for op in OPERATIONS if op.media == "application/json"}
              | {op.body for op in OPERATIONS if op.body} | {s.ErrorOut})
    _, definitions = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)], ref_template=_REF
    )
    schemas: dict[str, Any] = definitions.get("$defs", {})
    value_ref = _REF.format(model="MetadataValue")
    schemas["MetadataValue"] = metadata_schema(value_ref)
    for body in {op.body for op in OPERATIONS if op.body}:
        fields = schemas[body.__name__]["properties"]
        if "metadata" in fields:
            fields["metadata"] |= {"propertyNames": {"type": "string", "pattern": NO_NUL},
                                   "additionalProperties": {"$ref": value_ref}}
        if "params" in fields:
            fields["params"] |= {"additionalProperties": {"$ref": value_ref}}
        if "allowed_models" in fields:
            listed = next(option for option in fields["allowed_models"]["anyOf"] if option.get("type") == "array")
            listed["items"] |= served.schema()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault("/admin/api" + op.path, {})[op.method] = _operation(op)
    # The names a complexity report takes depend on the configuration, like `allowed_models`.
    named = paths["/admin/api/routing/complexity"]["get"]["parameters"][0]
    names: dict[str, Any] = {"type": "string", "enum": list(served.complexity)} if served.complexity else {"not": {}}
    named["schema"] = names
    return {
        "openapi": "3.1.0",
        "info": {"title": "llm-gateway admin API", "version": "1",
                 "description": "Keys, teams, their limits and spend, the audit log, the cost ledger, prompt "
                                "templates, budget forecasts, routing by complexity and a person's data. "
                                "Authenticate with the master key or an admin key as a bearer token."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
