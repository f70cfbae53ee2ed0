"""Each page's actions over HTTP, as a signed-in admin: edits, refusals with their reasons,
filters and pages."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import httpx
import pytest

from tests.admin_ui.conftest import Session, UiGateway
from tests.procs import MASTER_KEY

LEDGER_WAIT_S = 30


def flash_after(session: Session, response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    page = session.http.get(response.headers["location"])
    match = re.search(r'id="flash">(.*?)</div>', page.text, re.S)
    assert match, "no message on the page after the change"
    return match.group(1)


def error_of(response: httpx.Response) -> str:
    match = re.search(r'id="form-error">(.*?)</div>', response.text, re.S)
    assert match, "no error message on the page"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def make_team(session: Session) -> str:
    made = session.post("/admin/teams", {"name": f"pages-{secrets.token_hex(4)}", "budget_usd": "5",
                                         "budget_period": "daily"})
    assert made.status_code == 303
    return made.headers["location"].rsplit("/", 1)[1]


def make_key(session: Session, **fields: str) -> tuple[str, str]:
    made = session.post("/admin/keys", {"name": "pages", **fields})
    assert made.status_code == 201, error_of(made)
    key = re.search(r'id="new-key">([^<]+)<', made.text)
    key_id = re.search(r'href="/admin/keys/(key_[0-9a-f]+)"', made.text)
    assert key and key_id
    return key_id.group(1), key.group(1)


def chat(ui_gateway: UiGateway, key: str) -> httpx.Response:
    return httpx.post(ui_gateway.gw.url + "/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)


def test_team_edit_and_delete_with_reasons(admin_http: Session) -> None:
    team_id = make_team(admin_http)
    saved = admin_http.post(f"/admin/teams/{team_id}", {"name": f"renamed-{secrets.token_hex(3)}", "rpm": "30",
                                                         "budget_usd": "", "budget_period": ""})
    assert "saved" in flash_after(admin_http, saved)
    page = admin_http.http.get(f"/admin/teams/{team_id}").text
    assert "30 rpm" in page and 'name="budget_usd" id="f-budget_usd" value=""' in page

    key_id, _ = make_key(admin_http, team_id=team_id)
    refused = admin_http.post(f"/admin/teams/{team_id}/delete", {})
    assert refused.status_code == 409 and "revoke them first" in error_of(refused)
    revoked = admin_http.post(f"/admin/keys/{key_id}/revoke", {})
    assert "revoked" in flash_after(admin_http, revoked)
    deleted = admin_http.post(f"/admin/teams/{team_id}/delete", {})
    assert f"Team {team_id} deleted." in flash_after(admin_http, deleted)
    gone = admin_http.http.get(f"/admin/teams/{team_id}")
    assert gone.status_code == 404 and "No team with that id" in gone.text


def test_key_edit_rotate_and_their_refusals(admin_http: Session, ui_gateway: UiGateway) -> None:
    key_id, key = make_key(admin_http, allowed_models="gpt-test")
    form = {"name": "edited", "allowed_models": "other", "rpm": "7", "expires_at": ""}
    assert "saved" in flash_after(admin_http, admin_http.post(f"/admin/keys/{key_id}", form))
    page = admin_http.http.get(f"/admin/keys/{key_id}").text
    assert "edited" in page and "7 rpm" in page and "key.update" in page
    # The key now may use `other` only: the gateway says so to its client.
    assert chat(ui_gateway, key).status_code == 403

    bad = admin_http.post(f"/admin/keys/{key_id}", {**form, "allowed_models": "other, other"})
    assert bad.status_code == 400 and 'id="e-allowed_models"' in bad.text and "twice" in error_of(bad)
    grace = admin_http.post(f"/admin/keys/{key_id}/rotate", {"grace_seconds": "soon"})
    assert grace.status_code == 400 and "grace_seconds" in error_of(grace)
    admin_http.post(f"/admin/keys/{key_id}/revoke", {})
    rotated = admin_http.post(f"/admin/keys/{key_id}/rotate", {})
    assert rotated.status_code == 409 and "cannot be rotated" in error_of(rotated)
    missing = admin_http.post("/admin/keys/key_nope/revoke", {})
    assert missing.status_code == 404


def test_requests_filtered_and_paged(admin_http: Session, ui_gateway: UiGateway) -> None:
    key_id, key = make_key(admin_http)
    ids = [chat(ui_gateway, key).headers["x-request-id"] for _ in range(3)]
    deadline = time.monotonic() + LEDGER_WAIT_S
    while len(re.findall(r"data-request-id=", admin_http.http.get("/admin/requests", params={"key": key_id}).text)) < 3:
        assert time.monotonic() < deadline, "the requests never reached the ledger"
        time.sleep(0.2)
    page = admin_http.http.get("/admin/requests", params={"key": key_id, "limit": "2"})
    assert re.findall(r'data-request-id="([^"]+)"', page.text) == [ids[2], ids[1]]  # newest first
    following = re.search(r'href="([^"]+)" id="next-page"', page.text)
    assert following
    second = admin_http.http.get(following.group(1).replace("&amp;", "&"))
    assert re.findall(r'data-request-id="([^"]+)"', second.text) == [ids[0]]
    assert 'id="next-page"' not in second.text and "First page" in second.text
    detail = re.search(rf'href="(/admin/requests/{ids[0]}\?ts=[^"]+)"', second.text)
    assert detail
    assert ids[0] in admin_http.http.get(detail.group(1).replace("&amp;", "&")).text

    for query, field in (({"limit": "0"}, "limit"), ({"start": "yesterday"}, "start"),
                         ({"start": "2026-01-02T00:00", "end": "2026-01-01T00:00"}, "start")):
        refused = admin_http.http.get("/admin/requests", params=query)
        assert refused.status_code == 400 and f'id="e-{field}"' in refused.text, query
    unknown = admin_http.http.get(f"/admin/requests/{ids[0]}", params={"ts": "2001-01-01T00:00:00+00:00"})
    assert unknown.status_code == 404


def test_audit_filters(admin_http: Session) -> None:
    team_id = make_team(admin_http)
    page = admin_http.http.get("/admin/audit", params={"target_type": "team", "target_id": team_id})
    assert page.status_code == 200
    assert re.findall(r"<strong>([a-z.]+)</strong>", page.text) == ["team.create"]
    refused = admin_http.http.get("/admin/audit", params={"target_type": "model"})
    assert refused.status_code == 400 and "target_type" in error_of(refused)


def test_overview_and_models_render(admin_http: Session, ui_gateway: UiGateway) -> None:
    models = admin_http.http.get("/admin/models").text
    for name in ("gpt-test", "other"):
        assert f'data-deployment="{name}/0"' in models
    assert "circuit-closed" in models
    overview = admin_http.http.get("/admin")
    assert overview.status_code == 200 and "Top teams this month" in overview.text
    assert re.search(r'id="spend-today">.*?<strong>\$[\d.,]+</strong>', overview.text, re.S)


@pytest.mark.parametrize("path", ["/admin/teams/team_nope", "/admin/keys/key_nope"])
def test_unknown_ids_are_404_pages(admin_http: Session, path: str) -> None:
    page = admin_http.http.get(path)
    assert page.status_code == 404 and "Not found" in page.text


def test_api_changes_show_up_in_the_ui(admin_http: Session, ui_gateway: UiGateway) -> None:
    """The UI has no data of its own: what the JSON API writes, the pages read."""
    with httpx.Client(base_url=ui_gateway.base + "/admin/api",
                      headers={"authorization": f"Bearer {MASTER_KEY}"}) as api:
        team: dict[str, Any] = api.post("/teams", json={"name": f"api-{secrets.token_hex(4)}"}).json()
    page = admin_http.http.get(f"/admin/teams/{team['id']}").text
    assert team["name"] in page and "by master" in page
