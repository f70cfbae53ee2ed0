"""Each page's actions over HTTP, as a signed-in admin: edits, refusals with their reasons,
filters and pages."""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from admin.ui.formats import usd
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


def master_api(ui_gateway: UiGateway) -> httpx.Client:
    return httpx.Client(base_url=ui_gateway.base + "/admin/api", headers={"authorization": f"Bearer {MASTER_KEY}"},
                        timeout=30)


def row_of(html: str, key_id: str) -> str:
    """The table row of one key, its tags removed and its spaces squeezed."""
    match = re.search(rf'<tr data-key-id="{key_id}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {key_id}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def cell(html: str, key_id: str, name: str) -> str:
    match = re.search(rf'<tr data-key-id="{key_id}">.*?<td class="{name}">(.*?)</td>', html, re.S)
    assert match, f"no {name} cell for {key_id}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def wait_for_rows(session: Session, key_id: str, count: int) -> None:
    deadline = time.monotonic() + LEDGER_WAIT_S
    while len(re.findall(r"data-request-id=", session.http.get("/admin/requests", params={"key": key_id}).text)
              ) < count:
        assert time.monotonic() < deadline, "the requests never reached the ledger"
        time.sleep(0.2)


def test_an_expired_key_reads_expired_on_every_page(admin_http: Session, ui_gateway: UiGateway) -> None:
    team_id = make_team(admin_http)
    soon = datetime.now(UTC) + timedelta(seconds=2)
    with master_api(ui_gateway) as api:
        made = api.post("/keys", json={"name": "short-lived", "team_id": team_id, "expires_at": soon.isoformat()})
        assert made.status_code == 201, made.text
        live = api.post("/keys", json={"name": "long-lived", "team_id": team_id})
    expired_id, live_id = made.json()["id"], live.json()["id"]
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.5)
    assert chat(ui_gateway, made.json()["key"]).status_code == 401  # the gateway agrees that it is over

    team_page = admin_http.http.get(f"/admin/teams/{team_id}").text
    assert cell(team_page, expired_id, "status") == "expired"
    assert cell(team_page, live_id, "status") == "active"
    keys_page = admin_http.http.get("/admin/keys", params={"team_id": team_id}).text
    assert cell(keys_page, expired_id, "status") == "expired"
    key_page = admin_http.http.get(f"/admin/keys/{expired_id}").text
    status = re.search(r'id="key-status">(.*?)</div>', key_page, re.S)
    assert status and "expired" in status.group(1) and "active" not in status.group(1)


def test_request_ids_are_shown_whole(admin_http: Session, ui_gateway: UiGateway) -> None:
    key_id, key = make_key(admin_http)
    ids = [chat(ui_gateway, key).headers["x-request-id"] for _ in range(2)]
    # The gateway's own ids: one process's share all but their last characters.
    assert ids[0][:20] == ids[1][:20] and ids[0] != ids[1]
    wait_for_rows(admin_http, key_id, 2)
    page = admin_http.http.get("/admin/requests", params={"key": key_id}).text
    shown = re.findall(r'class="request-id"><code>([^<]+)</code>', page)
    assert shown == [ids[1], ids[0]]


@pytest.mark.parametrize("budget", ["10", ""], ids=["limiter", "ledger"])
def test_a_keys_spend_reads_the_same_on_keys_and_its_team(admin_http: Session, ui_gateway: UiGateway,
                                                          budget: str) -> None:
    """With a budget the limiter's counter is shown, without one the ledger's spend: the same on both pages."""
    team_id = make_team(admin_http)
    key_id, key = make_key(admin_http, team_id=team_id, budget_usd=budget)
    for words in (3, 7, 11):
        assert httpx.post(ui_gateway.gw.url + "/chat/completions", headers={"authorization": f"Bearer {key}"},
                          json={"model": "gpt-test", "messages": [{"role": "user", "content": "word " * words}]},
                          timeout=30).status_code == 200
    wait_for_rows(admin_http, key_id, 3)
    on_keys = row_of(admin_http.http.get("/admin/keys", params={"team_id": team_id}).text, key_id)
    on_team = row_of(admin_http.http.get(f"/admin/teams/{team_id}").text, key_id)
    spent = [re.search(r"(\$[\d.,]+) (of|in total)", text) for text in (on_keys, on_team)]
    assert spent[0] and spent[1], (on_keys, on_team)
    assert spent[0].group(1) == spent[1].group(1) != "$0.00"
    if not budget:  # the ledger's figure: what the spend API says of this key alone
        with master_api(ui_gateway) as api:
            total = api.get("/ledger/spend", params={"key": key_id}).json()["total"]  # 30 days: the key is new
        assert spent[0].group(1) == usd(total["cost_usd"])


def test_overview_top_keys_and_its_date_range(admin_http: Session, ui_gateway: UiGateway) -> None:
    key_id, key = make_key(admin_http, name=f"top-{secrets.token_hex(3)}")
    # A long prompt, so this key spends more today than any other test's key (the fake counts words).
    long = httpx.post(ui_gateway.gw.url + "/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": "gpt-test", "messages": [{"role": "user", "content": "word " * 20_000}]},
                      timeout=30)
    assert long.status_code == 200 and chat(ui_gateway, key).status_code == 200
    wait_for_rows(admin_http, key_id, 2)
    today = datetime.now(UTC).date()
    with master_api(ui_gateway) as api:
        spend = api.get("/ledger/spend", params={"group_by": "key", "key": key_id, "start": today.isoformat(),
                                                 "end": today.isoformat()}).json()["data"][0]

    for query in ({}, {"start": today.isoformat(), "end": today.isoformat()}):
        page = admin_http.http.get("/admin", params=query)
        assert page.status_code == 200
        panel = re.search(r'id="top-keys">(.*?)</table>', page.text, re.S)
        assert panel, "no top-keys panel"
        first = re.search(r'<tr data-key-id="([^"]*)">', panel.group(1))
        assert first and first.group(1) == key_id
        assert cell(panel.group(1), key_id, "num requests") == "2"
        assert cell(panel.group(1), key_id, "num spend") == usd(spend["cost_usd"])
    chosen = admin_http.http.get("/admin", params={"start": (today - timedelta(days=6)).isoformat()}).text
    assert f"{today - timedelta(days=6)} to {today}" in chosen
    assert "Top keys this month" in admin_http.http.get("/admin").text

    later = (today + timedelta(days=1)).isoformat()
    for query, field in (({"start": "last week"}, "start"), ({"end": later}, "end"),
                         ({"start": today.isoformat(), "end": (today - timedelta(days=1)).isoformat()}, "start"),
                         ({"start": (today - timedelta(days=400)).isoformat()}, "start")):
        refused = admin_http.http.get("/admin", params=query)
        assert refused.status_code == 400 and f'id="e-{field}"' in refused.text, query
        assert 'id="top-keys"' in refused.text  # the default range is still shown


def test_recommendations_show_repeats_and_refuse_bad_criteria(admin_http: Session, ui_gateway: UiGateway) -> None:
    _, key = make_key(admin_http)
    for _ in range(3):
        assert chat(ui_gateway, key).status_code == 200
    deadline = time.monotonic() + LEDGER_WAIT_S
    while 'data-kind="cache"' not in (page := admin_http.http.get("/admin/recommendations")).text:
        assert time.monotonic() < deadline, "no repeats recommended"
        time.sleep(0.2)
    assert page.status_code == 200 and 'id="total"' in page.text
    narrowed = admin_http.http.get("/admin/recommendations", params={"days": "3", "cache_ttl_s": "60"})
    assert narrowed.status_code == 200 and 'name="days" min="1" value="3"' in narrowed.text
    refused = admin_http.http.get("/admin/recommendations", params={"max_latency_ratio": "0.5"})
    assert refused.status_code == 400 and "max_latency_ratio" in refused.text
