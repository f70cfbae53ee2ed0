"""The admin API end to end, over real HTTP, against a real gateway on SQLite and on Postgres + Redis."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openapi_spec_validator import validate as validate_openapi

from admin.api import AdminApi, admin_routes
from admin.complexity_api import ComplexityApi, complexity_routes
from admin.forecast_api import ForecastApi, forecast_routes
from admin.ledger_api import LedgerApi, ledger_routes
from admin.privacy_api import PrivacyApi, privacy_routes
from admin.prompts_api import PromptsApi, prompts_routes
from admin.recommendations_api import RecommendationsApi, recommendation_routes
from gateway.identity.keys import hash_key
from tests.admin.conftest import log_text
from tests.procs import MASTER_KEY, Gateway


def unique(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}"


def assert_error(response: httpx.Response, status: int, param: str | None = None, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error


def newest_audit_id(admin: httpx.Client) -> int:
    data = admin.get("/audit", params={"limit": 1}).json()["data"]
    return data[0]["id"] if data else 0


@pytest.fixture(scope="module")
def openapi(admin_gateway: Gateway) -> dict[str, Any]:
    response = httpx.get(admin_gateway.base + "/admin/api/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def conforms(document: dict[str, Any], schema: str, instance: Any) -> None:
    """The response matches what the OpenAPI document promises for it."""
    jsonschema.validate(instance, {"$ref": f"#/components/schemas/{schema}", "components": document["components"]})


def test_teams_create_read_list_update_delete(admin: httpx.Client, openapi: dict[str, Any]) -> None:
    name = unique("team")
    created = admin.post("/teams", json={"name": name, "rpm": 60, "tpm": 1000, "max_parallel": 3,
                                         "budget_usd": "25.50", "budget_period": "monthly", "metadata": {"cc": 7}})
    assert created.status_code == 201, created.text
    team = created.json()
    conforms(openapi, "TeamOut", team)
    assert (team["name"], team["rpm"], team["budget_usd"], team["budget_period"]) == (name, 60, "25.5", "monthly")
    assert team["created_by"] == "master"
    assert admin.get(f"/teams/{team['id']}").json() == team

    listed = admin.get("/teams", params={"limit": 1000}).json()
    conforms(openapi, "TeamList", listed)
    assert team["id"] in [t["id"] for t in listed["data"]]

    updated = admin.patch(f"/teams/{team['id']}", json={"rpm": None, "budget_usd": 3})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["rpm"], updated.json()["budget_usd"], updated.json()["tpm"]) == (None, "3", 1000)

    deleted = admin.delete(f"/teams/{team['id']}")
    assert deleted.json() == {"object": "team.deleted", "id": team["id"], "deleted": True}
    assert_error(admin.get(f"/teams/{team['id']}"), 404, "team_id")

    audit = admin.get("/audit", params={"target_type": "team", "target_id": team["id"]}).json()
    conforms(openapi, "AuditList", audit)
    assert [(e["action"], e["actor"]) for e in audit["data"]] == [
        ("team.delete", "master"), ("team.update", "master"), ("team.create", "master")]
    assert audit["data"][1]["details"]["changes"]["rpm"] == {"from": 60, "to": None}


def test_team_list_pages(admin: httpx.Client) -> None:
    ids = sorted(admin.post("/teams", json={"name": unique("p")}).json()["id"] for _ in range(3))
    page = admin.get("/teams", params={"after": ids[0], "limit": 2}).json()
    assert [t["id"] for t in page["data"]] == ids[1:]
    assert page["has_more"] is False or page["last_id"] == ids[2]


def test_duplicate_team_name_is_409_naming_the_field(admin: httpx.Client) -> None:
    name = unique("dup")
    assert admin.post("/teams", json={"name": name}).status_code == 201
    before = newest_audit_id(admin)
    assert_error(admin.post("/teams", json={"name": name}), 409, "name", "conflict")
    assert newest_audit_id(admin) == before


def test_team_with_live_keys_cannot_be_deleted(admin: httpx.Client) -> None:
    team = admin.post("/teams", json={"name": unique("busy")}).json()
    key = admin.post("/keys", json={"team_id": team["id"]}).json()
    assert_error(admin.delete(f"/teams/{team['id']}"), 409, code="conflict")
    assert admin.post(f"/keys/{key['id']}/revoke").status_code == 200
    assert admin.delete(f"/teams/{team['id']}").status_code == 200
    assert admin.get(f"/keys/{key['id']}").json()["team_id"] is None


def test_keys_create_read_list_update_rotate_revoke(admin: httpx.Client, openapi: dict[str, Any]) -> None:
    team = admin.post("/teams", json={"name": unique("owners")}).json()
    created = admin.post("/keys", json={
        "name": "svc", "team_id": team["id"], "allowed_models": ["gpt-test"], "rpm": 10, "tpm": 5000,
        "max_parallel": 2, "budget_usd": 1.25, "budget_period": "daily", "expires_at": "2999-01-01T00:00:00Z",
        "metadata": {"owner": "ml"},
    })
    assert created.status_code == 201, created.text
    body = created.json()
    conforms(openapi, "KeyWithSecret", body)
    secret = body["key"]
    assert secret.startswith("sk-gw-") and len(secret) >= 40
    assert secret.startswith(body["prefix"]) and len(body["prefix"]) < 16
    assert (body["budget_usd"], body["expires_at"]) == ("1.25", "2999-01-01T00:00:00+00:00")

    read = admin.get(f"/keys/{body['id']}")
    conforms(openapi, "KeyOut", read.json())
    assert "key" not in read.json() and secret not in read.text
    listed = admin.get("/keys", params={"team_id": team["id"]})
    conforms(openapi, "KeyList", listed.json())
    assert [k["id"] for k in listed.json()["data"]] == [body["id"]]
    assert secret not in listed.text

    updated = admin.patch(f"/keys/{body['id']}", json={"allowed_models": None, "rpm": None, "name": "renamed"})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["allowed_models"], updated.json()["rpm"], updated.json()["name"]) == (None, None, "renamed")

    rotated = admin.post(f"/keys/{body['id']}/rotate", json={"grace_seconds": 120})
    assert rotated.status_code == 200, rotated.text
    conforms(openapi, "RotatedKey", rotated.json())
    assert rotated.json()["id"] == body["id"] and rotated.json()["key"] != secret
    assert rotated.json()["prefix"] == rotated.json()["key"][: len(body["prefix"])]

    revoked = admin.post(f"/keys/{body['id']}/revoke")
    assert revoked.json()["revoked"] is True and revoked.json()["revoked_at"]
    assert_error(admin.post(f"/keys/{body['id']}/rotate"), 409, code="conflict")

    audit = admin.get("/audit", params={"target_id": body["id"]}).json()["data"]
    assert [e["action"] for e in audit] == ["key.revoke", "key.rotate", "key.update", "key.create"]
    for text in (str(audit), listed.text, read.text, revoked.text):
        assert secret not in text and rotated.json()["key"] not in text and hash_key(secret) not in text


def test_list_keys_filters_revoked(admin: httpx.Client) -> None:
    team = admin.post("/teams", json={"name": unique("filter")}).json()
    live = admin.post("/keys", json={"team_id": team["id"]}).json()
    dead = admin.post("/keys", json={"team_id": team["id"]}).json()
    admin.post(f"/keys/{dead['id']}/revoke")
    active = admin.get("/keys", params={"team_id": team["id"], "include_revoked": "false"}).json()["data"]
    assert [k["id"] for k in active] == [live["id"]]


def test_spend_reads_limits_and_null_spend_until_a_limiter_reports_it(
    admin: httpx.Client, openapi: dict[str, Any]
) -> None:
    team = admin.post("/teams", json={"name": unique("spend"), "budget_usd": "100", "budget_period": "weekly"}).json()
    key = admin.post("/keys", json={"team_id": team["id"], "tpm": 99}).json()
    team_spend = admin.get(f"/teams/{team['id']}/spend").json()
    conforms(openapi, "SpendReport", team_spend)
    assert team_spend["limits"]["budget_usd"] == "100" and team_spend["limits"]["budget_period"] == "weekly"
    # The limiter (gateway/accounting/limits/) reports the live spend of the current week: nothing yet.
    assert team_spend["spend"]["spent_usd"] == "0.000000"
    key_spend = admin.get(f"/keys/{key['id']}/spend").json()
    assert (key_spend["scope"], key_spend["id"], key_spend["limits"]["tpm"]) == ("key", key["id"], 99)


TEAM_BODIES = [
    ({}, "name", "missing_required_parameter"),
    ({"name": ""}, "name", "invalid_value"),
    ({"name": "x" * 129}, "name", "invalid_value"),
    ({"name": "n", "rpm": 0}, "rpm", "invalid_value"),
    ({"name": "n", "rpm": "5"}, "rpm", "invalid_value"),
    ({"name": "n", "tpm": 1.5}, "tpm", "invalid_value"),
    ({"name": "n", "max_parallel": -1}, "max_parallel", "invalid_value"),
    ({"name": "n", "budget_usd": "1.0000001"}, "budget_usd", "invalid_value"),
    ({"name": "n", "budget_usd": -1}, "budget_usd", "invalid_value"),
    ({"name": "n", "budget_usd": "NaN"}, "budget_usd", "invalid_value"),
    ({"name": "n", "budget_usd": "lots"}, "budget_usd", "invalid_value"),
    ({"name": "n", "budget_period": "yearly"}, "budget_period", "invalid_value"),
    ({"name": "n", "metadata": [1]}, "metadata", "invalid_value"),
    ({"name": "n", "metadata": {"big": "x" * 20_000}}, "metadata", "invalid_value"),
    ({"name": "n", "bogus": 1}, "bogus", "unknown_parameter"),
]

KEY_BODIES = [
    ({"allowed_models": ["gpt-test", "gpt-test"]}, "allowed_models", "invalid_value"),
    ({"allowed_models": [""]}, "allowed_models[0]", "invalid_value"),
    ({"allowed_models": "gpt-test"}, "allowed_models", "invalid_value"),
    ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at", "invalid_value"),
    ({"expires_at": "2999-01-01T00:00:00"}, "expires_at", "invalid_value"),
    ({"expires_at": "tomorrow"}, "expires_at", "invalid_value"),
    ({"team_id": "team_nope"}, "team_id", "invalid_value"),
    ({"is_admin": "yes"}, "is_admin", "invalid_value"),
    ({"rpm": 2**31}, "rpm", "invalid_value"),
    ({"name": 5}, "name", "invalid_value"),
    ({"key": "sk-gw-choose-my-own"}, "key", "unknown_parameter"),
]


@pytest.mark.parametrize(("body", "param", "code"), TEAM_BODIES)
def test_bad_team_input_is_400_naming_the_field_and_writes_nothing(
    admin: httpx.Client, body: dict[str, Any], param: str, code: str
) -> None:
    before = newest_audit_id(admin)
    assert_error(admin.post("/teams", json=body), 400, param, code)
    assert newest_audit_id(admin) == before


@pytest.mark.parametrize(("body", "param", "code"), KEY_BODIES)
def test_bad_key_input_is_400_naming_the_field_and_writes_nothing(
    admin: httpx.Client, body: dict[str, Any], param: str, code: str
) -> None:
    before = newest_audit_id(admin)
    count = len(admin.get("/keys", params={"limit": 1000}).json()["data"])
    assert_error(admin.post("/keys", json=body), 400, param, code)
    assert newest_audit_id(admin) == before
    assert len(admin.get("/keys", params={"limit": 1000}).json()["data"]) == count


def test_bad_updates_are_400_and_change_nothing(admin: httpx.Client) -> None:
    team = admin.post("/teams", json={"name": unique("keep"), "rpm": 5}).json()
    key = admin.post("/keys", json={"name": "keep", "tpm": 7}).json()
    before = newest_audit_id(admin)
    assert_error(admin.patch(f"/teams/{team['id']}", json={"name": None}), 400, "name")
    assert_error(admin.patch(f"/teams/{team['id']}", json={"rpm": 0, "name": "changed"}), 400, "rpm")
    assert_error(admin.patch(f"/keys/{key['id']}", json={"tpm": 0}), 400, "tpm")
    assert_error(admin.patch(f"/keys/{key['id']}", json={"team_id": "team_nope"}), 400, "team_id")
    assert_error(admin.patch(f"/keys/{key['id']}", json={"metadata": None}), 400, "metadata")
    assert_error(admin.post(f"/keys/{key['id']}/rotate", json={"grace_seconds": -1}), 400, "grace_seconds")
    assert newest_audit_id(admin) == before
    assert admin.get(f"/teams/{team['id']}").json() == team
    assert admin.get(f"/keys/{key['id']}").json()["tpm"] == 7


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b"null"])
def test_bodies_that_are_not_json_objects_are_400(admin: httpx.Client, raw: bytes) -> None:
    response = admin.post("/teams", content=raw, headers={"content-type": "application/json"})
    assert_error(response, 400)
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(("path", "params", "param"), [
    ("/keys", {"limit": "0"}, "limit"),
    ("/keys", {"limit": "many"}, "limit"),
    ("/keys", {"include_revoked": "maybe"}, "include_revoked"),
    ("/teams", {"limit": "1001"}, "limit"),
    ("/audit", {"target_type": "user"}, "target_type"),
    ("/audit", {"before": "-3"}, "before"),
])
def test_bad_query_parameters_are_400_naming_them(
    admin: httpx.Client, path: str, params: dict[str, str], param: str
) -> None:
    assert_error(admin.get(path, params=params), 400, param, "invalid_value")


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/keys/key_nope"), ("PATCH", "/keys/key_nope"), ("POST", "/keys/key_nope/rotate"),
    ("POST", "/keys/key_nope/revoke"), ("GET", "/keys/key_nope/spend"), ("GET", "/teams/team_nope"),
    ("PATCH", "/teams/team_nope"), ("DELETE", "/teams/team_nope"), ("GET", "/teams/team_nope/spend"),
])
def test_unknown_ids_are_404(admin: httpx.Client, method: str, path: str) -> None:
    before = newest_audit_id(admin)
    assert_error(admin.request(method, path, json={} if method != "GET" else None), 404)
    assert newest_audit_id(admin) == before


def test_unknown_admin_paths_and_methods_are_openai_errors(admin: httpx.Client) -> None:
    assert_error(admin.get("/nothing-here"), 404)
    assert_error(admin.put("/keys"), 405)


def test_admin_api_needs_the_master_key_or_an_admin_key(admin: httpx.Client, admin_gateway: Gateway) -> None:
    base = admin_gateway.base + "/admin/api"
    assert_error(httpx.get(base + "/keys"), 401, code="invalid_api_key")
    assert_error(httpx.get(base + "/keys", headers={"authorization": "Bearer sk-gw-wrong"}), 401)
    plain = admin.post("/keys", json={"name": "plain"}).json()
    assert_error(httpx.get(base + "/keys", headers={"authorization": f"Bearer {plain['key']}"}), 403,
                 code="permission_denied")

    boss = admin.post("/keys", json={"name": "boss", "is_admin": True}).json()
    as_admin = {"authorization": f"Bearer {boss['key']}"}
    made = httpx.post(base + "/teams", json={"name": unique("by-admin-key")}, headers=as_admin)
    assert made.status_code == 201, made.text
    assert made.json()["created_by"] == f"key:{boss['id']}"
    entry = admin.get("/audit", params={"target_id": made.json()["id"]}).json()["data"][0]
    assert entry["actor"] == f"key:{boss['id']}"

    # Demoted: at once (the change is announced to the key cache), and refused from then on.
    admin.patch(f"/keys/{boss['id']}", json={"is_admin": False})
    assert_error(httpx.get(base + "/keys", headers=as_admin), 403)
    assert_error(httpx.get(base + "/audit", headers={"authorization": f"Bearer {MASTER_KEY}x"}), 401)


def test_openapi_document_is_valid_and_covers_every_route(openapi: dict[str, Any]) -> None:
    validate_openapi(openapi)
    routes = [*admin_routes(AdminApi.__new__(AdminApi)), *ledger_routes(LedgerApi.__new__(LedgerApi)),
              *privacy_routes(PrivacyApi.__new__(PrivacyApi)), *prompts_routes(PromptsApi.__new__(PromptsApi)),
              *complexity_routes(ComplexityApi.__new__(ComplexityApi)),
              *forecast_routes(ForecastApi.__new__(ForecastApi)),
              *recommendation_routes(RecommendationsApi.__new__(RecommendationsApi))]
    served = {(method.lower(), route.path) for route in routes for method in route.methods or () if method != "HEAD"}
    documented = {(method, path) for path, item in openapi["paths"].items() for method in item}
    assert documented | {("get", "/admin/api/openapi.json")} == served


def test_error_responses_match_the_documented_error_shape(admin: httpx.Client, openapi: dict[str, Any]) -> None:
    unauthenticated = httpx.get(str(admin.base_url) + "/keys")
    for response in (admin.post("/teams", json={}), admin.get("/keys/key_nope"), unauthenticated):
        assert response.status_code >= 400
        conforms(openapi, "ErrorOut", response.json())


def test_no_full_key_in_any_response_or_log(admin: httpx.Client, admin_gateway: Gateway) -> None:
    created = admin.post("/keys", json={"name": "secret-keeper"}).json()
    secrets_seen = [created["key"]]
    client = openai.OpenAI(base_url=admin_gateway.url, api_key=created["key"], max_retries=0)
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    rotated = admin.post(f"/keys/{created['id']}/rotate", json={"grace_seconds": 0}).json()
    secrets_seen.append(rotated["key"])
    with pytest.raises(openai.AuthenticationError):
        client.models.list()  # the old key, after a rotation without grace
    admin.post(f"/keys/{created['id']}/revoke")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=admin_gateway.url, api_key=rotated["key"], max_retries=0).models.list()

    everything = "".join(
        admin.get(path, params={"limit": 1000}).text for path in ("/keys", "/teams", "/audit")
    ) + admin.get(f"/keys/{created['id']}").text + log_text(admin_gateway)
    assert "secret-keeper" in admin.get("/keys", params={"limit": 1000}).text  # the check reads real data
    assert "admin key.create" in log_text(admin_gateway)  # and the log is really being written
    for secret in secrets_seen:
        assert secret not in everything
        assert secret[len(created["prefix"]):] not in everything
        assert hash_key(secret) not in everything
    assert MASTER_KEY not in log_text(admin_gateway)
