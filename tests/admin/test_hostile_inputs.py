"""Hostile input to the admin API, on SQLite and on Postgres (which cannot store a NUL character):
every case is a 400 whose `param` names the field, nothing is written, and the log holds no
traceback. Before these rules, 31 of these cases were a 500 with a traceback on Postgres and
12 on SQLite, and 9 NUL-bearing names and filters were stored in SQLite.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.admin.conftest import log_text
from tests.procs import Gateway


def cursor(ts_us: int, request_id: str = "req_x") -> str:
    return base64.urlsafe_b64encode(json.dumps([ts_us, request_id]).encode()).decode().rstrip("=")


def raw(body: str | dict[str, Any]) -> dict[str, Any]:
    """A JSON body as written, or encoded by the standard library (httpx's encoder stops at 64 bits)."""
    text = body if isinstance(body, str) else json.dumps(body)
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


NESTED = '{"a":' * 300 + "1" + "}" * 300

CASES: list[tuple[str, str, dict[str, Any], str | None]] = [
    # NUL in names, metadata, filters and ids
    ("POST", "/teams", {"json": {"name": "a\x00b"}}, "name"),
    ("POST", "/teams", {"json": {"name": "t", "metadata": {"k": "a\x00b"}}}, "metadata"),
    ("POST", "/teams", {"json": {"name": "t", "metadata": {"a\x00": 1}}}, "metadata"),
    ("POST", "/teams", {"json": {"name": "t", "metadata": {"l": [{"deep": "\x00"}]}}}, "metadata"),
    ("POST", "/keys", {"json": {"name": "a\x00"}}, "name"),
    ("POST", "/keys", {"json": {"team_id": "team_\x00"}}, "team_id"),
    ("POST", "/keys", {"json": {"allowed_models": ["gpt-test\x00"]}}, "allowed_models[0]"),
    ("GET", "/keys?team_id=a%00b", {}, "team_id"),
    ("GET", "/keys?after=%00", {}, "after"),
    ("GET", "/teams?after=%00", {}, "after"),
    ("GET", "/audit?target_id=%00", {}, "target_id"),
    ("GET", "/teams/a%00b", {}, "team_id"),
    ("PATCH", "/teams/a%00b", {"json": {"name": "x"}}, "team_id"),
    ("DELETE", "/teams/a%00b", {}, "team_id"),
    ("GET", "/teams/a%00b/spend", {}, "team_id"),
    ("GET", "/keys/a%00b", {}, "key_id"),
    ("PATCH", "/keys/a%00b", {"json": {}}, "key_id"),
    ("POST", "/keys/a%00b/rotate", {}, "key_id"),
    ("POST", "/keys/a%00b/revoke", {}, "key_id"),
    ("GET", "/keys/a%00b/spend", {}, "key_id"),
    ("GET", "/ledger/spend?team=%00", {}, "team"),
    ("GET", "/ledger/spend?provider=%00&format=csv", {}, "provider"),
    ("GET", "/ledger/requests?model=a%00", {}, "model"),
    ("GET", "/ledger/requests?key=%00", {}, "key"),
    # Integers past 64 bits, in metadata and in limits
    ("POST", "/teams", raw({"name": "t", "metadata": {"n": 2**63}}), "metadata"),
    ("POST", "/teams", raw({"name": "t", "metadata": {"n": 2**64}}), "metadata"),
    ("POST", "/teams", raw({"name": "t", "metadata": {"n": [2**70]}}), "metadata"),
    ("POST", "/teams", raw('{"name": "t", "metadata": {"n": 1e400}}'), "metadata"),
    ("POST", "/teams", raw({"name": "t", "rpm": 2**64}), "rpm"),
    ("POST", "/keys", raw({"tpm": 2**63}), "tpm"),
    ("POST", "/keys", raw({"budget_usd": 2**64}), "budget_usd"),
    ("GET", "/teams?limit=18446744073709551616", {}, "limit"),
    ("GET", "/audit?before=18446744073709551616", {}, "before"),
    # Unicode digits
    ("GET", "/teams?limit=%C2%B2", {}, "limit"),
    ("GET", "/keys?limit=%D9%A3", {}, "limit"),
    ("GET", "/audit?before=%C2%B2", {}, "before"),
    ("GET", "/ledger/requests?limit=%C2%B2", {}, "limit"),
    ("GET", "/ledger/requests?status=%C2%B2", {}, "status"),
    # Dates and times out of range
    ("POST", "/keys", {"json": {"expires_at": "9999-12-31T23:59:59-23:59"}}, "expires_at"),
    ("POST", "/keys", {"json": {"expires_at": "0001-01-01T00:00:00+23:59"}}, "expires_at"),
    ("POST", "/keys", {"json": {"expires_at": 4102444800}}, "expires_at"),
    ("GET", "/ledger/requests?end=9999-12-31T23:59:59-23:59", {}, "end"),
    ("GET", "/ledger/requests?start=9999-12-31T23:59:59", {}, "start"),
    ("GET", "/ledger/requests?cursor=" + cursor(-(2**62)), {}, "cursor"),
    ("GET", "/ledger/requests?cursor=" + cursor(2**62), {}, "cursor"),
    ("GET", "/ledger/requests?cursor=" + cursor(2**64), {}, "cursor"),
    ("GET", "/ledger/requests?cursor=" + cursor(1, "a\x00"), {}, "cursor"),
    # Bodies that are not what the operation needs
    ("POST", "/keys", {}, None),
    ("POST", "/teams", {}, None),
    ("POST", "/teams", raw('{"name": "t", "metadata": ' + NESTED + "}"), None),
    # A model the gateway does not serve
    ("POST", "/keys", {"json": {"allowed_models": ["gpt-4o-mini"]}}, "allowed_models[0]"),
    ("POST", "/keys", {"json": {"allowed_models": ["gpt-test", "vendor/"]}}, "allowed_models[1]"),
]


@pytest.mark.parametrize(("method", "path", "request_kwargs", "param"), CASES,
                         ids=[f"{m} {p[:40]} {param}" for m, p, _, param in CASES])
def test_hostile_input_is_a_400_naming_the_field_and_writes_nothing(
    admin: httpx.Client, admin_gateway: Gateway, method: str, path: str, request_kwargs: dict[str, Any],
    param: str | None,
) -> None:
    before = admin.get("/audit", params={"limit": 1}).json()["data"]
    keys = len(admin.get("/keys", params={"limit": 1000}).json()["data"])
    response = admin.request(method, path, **request_kwargs)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param), error
    assert admin.get("/audit", params={"limit": 1}).json()["data"] == before
    assert len(admin.get("/keys", params={"limit": 1000}).json()["data"]) == keys
    assert "Traceback" not in log_text(admin_gateway)


def test_served_names_aliases_and_wildcard_matches_are_allowed_models(admin: httpx.Client) -> None:
    created = admin.post("/keys", json={"allowed_models": ["gpt-test", "gpt-alias", "vendor/any-model"]})
    assert created.status_code == 201, created.text
    changed = admin.patch(f"/keys/{created.json()['id']}", json={"allowed_models": ["other", "nope"]})
    assert changed.status_code == 400 and changed.json()["error"]["param"] == "allowed_models[1]"
    assert "nope" in changed.json()["error"]["message"]
    # The document names what may be listed, so a client can know before it asks.
    items = next(option["items"] for option in admin.get("/openapi.json").json()["components"]["schemas"][
        "KeyCreate"]["properties"]["allowed_models"]["anyOf"] if option.get("type") == "array")
    assert {"enum": ["auto", "gpt-alias", "gpt-test", "other"]} in items["anyOf"]  # `auto`: a complexity model
    assert {"pattern": "^vendor/[^\\x00]+$"} in items["anyOf"]


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("TRACE", "/keys", {"GET", "HEAD", "POST"}),
    ("PUT", "/teams/team_x", {"GET", "HEAD", "PATCH", "DELETE"}),
    ("DELETE", "/keys/key_x/rotate", {"POST"}),
    ("POST", "/ledger/spend", {"GET", "HEAD"}),
])
def test_a_wrong_method_is_405_naming_the_right_ones(admin: httpx.Client, method: str, path: str,
                                                     allowed: set[str]) -> None:
    response = admin.request(method, path)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["allow"].replace(" ", "").split(",")) == allowed


def test_boundaries_still_work(admin: httpx.Client) -> None:
    made = admin.post("/teams", content=b'{"name": "edge-%d", "rpm": 2147483647.0, "metadata": {"n": %d, "m": %d}}'
                      % (id(admin), 2**63 - 1, -(2**63)), headers={"content-type": "application/json"})
    assert made.status_code == 201, made.text
    assert made.json()["rpm"] == 2147483647 and made.json()["metadata"] == {"n": 2**63 - 1, "m": -(2**63)}
    early = admin.get("/ledger/requests", params={"end": "0001-01-01"})  # a range with little before it
    assert early.status_code == 200 and early.json()["data"] == []
    spend = admin.get("/ledger/spend", params={"end": "0001-01-01"})
    assert spend.status_code == 200 and spend.json()["start"] == "0001-01-01"
