"""The admin UI's guards, over real HTTP against the real gateway: no session, no page; a viewer
changes nothing; a form without its CSRF token changes nothing; cookies are signed, scoped and
expire; and a key is rendered once, when it is made, and never again."""

from __future__ import annotations

import re
import secrets
import time

import httpx
import pytest
from pydantic import SecretStr

from admin.ui.session import LOGIN_COOKIE, SESSION_COOKIE, Signer
from tests.admin_ui.conftest import Session, UiGateway, admin_user, csrf_of
from tests.procs import MASTER_KEY

PAGES = ["/admin", "/admin/teams", "/admin/keys", "/admin/models", "/admin/requests", "/admin/audit",
         "/admin/playground", "/admin/prompts", "/admin/forecasts", "/admin/recommendations"]
# Every route that changes something, with a form that would succeed for an admin.
CHANGES = ["/admin/teams", "/admin/teams/{team}", "/admin/teams/{team}/delete", "/admin/keys", "/admin/keys/{key}",
           "/admin/keys/{key}/rotate", "/admin/keys/{key}/revoke", "/admin/prompts"]


@pytest.fixture
def api(ui_gateway: UiGateway) -> httpx.Client:
    return httpx.Client(base_url=ui_gateway.base + "/admin/api", headers={"authorization": f"Bearer {MASTER_KEY}"},
                        timeout=30)


@pytest.fixture
def team_and_key(api: httpx.Client) -> tuple[dict[str, object], dict[str, object]]:
    team = api.post("/teams", json={"name": f"guarded-{secrets.token_hex(4)}"}).json()
    key = api.post("/keys", json={"name": "guarded", "team_id": team["id"]}).json()
    return team, key


def routes(team: dict[str, object], key: dict[str, object]) -> list[str]:
    return [path.format(team=team["id"], key=key["id"]) for path in CHANGES]


def test_pages_refuse_without_a_session(ui_gateway: UiGateway,
                                        team_and_key: tuple[dict[str, object], dict[str, object]]) -> None:
    team, key = team_and_key
    with httpx.Client(base_url=ui_gateway.base, follow_redirects=False) as anonymous:
        for path in [*PAGES, f"/admin/teams/{team['id']}", f"/admin/keys/{key['id']}"]:
            response = anonymous.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/admin/login?next=")
            assert str(key["id"]) not in response.text and str(team["id"]) not in response.text
        for path in routes(team, key):
            response = anonymous.post(path, data={"name": "x", "csrf_token": "x"})
            assert response.status_code == 401, path
        # The JSON admin API does not take the UI's cookie: it wants a bearer key.
        assert anonymous.get("/admin/api/teams").status_code == 401
    assert not api_key_changed(team_and_key, ui_gateway)


def api_key_changed(team_and_key: tuple[dict[str, object], dict[str, object]], ui_gateway: UiGateway) -> bool:
    team, key = team_and_key
    with httpx.Client(base_url=ui_gateway.base + "/admin/api",
                      headers={"authorization": f"Bearer {MASTER_KEY}"}) as api:
        now_team = api.get(f"/teams/{team['id']}").json()
        now_key = api.get(f"/keys/{key['id']}").json()
    return now_team != team or any(now_key[k] != key[k] for k in now_key if k != "key")


def test_the_admin_api_refuses_a_session_cookie(admin_http: Session) -> None:
    assert SESSION_COOKIE in admin_http.http.cookies
    assert admin_http.http.get("/admin/api/teams").status_code == 401


def test_a_viewer_can_look_but_not_change_anything(
    viewer_http: Session, ui_gateway: UiGateway, team_and_key: tuple[dict[str, object], dict[str, object]]
) -> None:
    team, key = team_and_key
    for path in [*PAGES, f"/admin/teams/{team['id']}", f"/admin/keys/{key['id']}"]:
        page = viewer_http.http.get(path)
        assert page.status_code == 200, path
        # The only form that posts is signing out.
        assert re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', page.text) == ["/admin/logout"], path
    token = viewer_http.csrf("/admin")
    forms = {"name": f"viewer-{secrets.token_hex(3)}", "team_id": str(team["id"]), "rpm": "5"}
    for path in routes(team, key):
        refused = viewer_http.post(path, forms, token=token)
        assert refused.status_code == 403, path
        assert "viewer" in refused.text
    assert not api_key_changed(team_and_key, ui_gateway)
    with httpx.Client(base_url=ui_gateway.base + "/admin/api",
                      headers={"authorization": f"Bearer {MASTER_KEY}"}) as api:
        names = [t["name"] for t in api.get("/teams", params={"limit": 1000}).json()["data"]]
    assert forms["name"] not in names


def test_a_form_without_its_csrf_token_changes_nothing(
    admin_http: Session, viewer_http: Session, ui_gateway: UiGateway,
    team_and_key: tuple[dict[str, object], dict[str, object]],
) -> None:
    team, key = team_and_key
    others = viewer_http.csrf("/admin")  # a real token, of another session
    for path in routes(team, key):
        for token in ("", "forged", others):
            refused = admin_http.post(path, {"name": "renamed"}, token=token)
            assert refused.status_code == 403, (path, token)
            assert "security token" in refused.text
        missing = admin_http.http.post(path, data={"name": "renamed"})
        assert missing.status_code == 403
    assert not api_key_changed(team_and_key, ui_gateway)
    # With the token, the same form goes through.
    renamed = admin_http.post(f"/admin/teams/{team['id']}", {"name": f"renamed-{secrets.token_hex(3)}"})
    assert renamed.status_code == 303


def test_a_form_from_another_site_is_refused(admin_http: Session,
                                             team_and_key: tuple[dict[str, object], dict[str, object]]) -> None:
    team, _ = team_and_key
    refused = admin_http.post(f"/admin/teams/{team['id']}/delete", {}, headers={"origin": "https://evil.example"})
    assert refused.status_code == 403
    assert "another site" in refused.text


def test_sign_in_needs_its_csrf_token_and_the_right_password(ui_gateway: UiGateway) -> None:
    with httpx.Client(base_url=ui_gateway.base, follow_redirects=False) as client:
        no_token = client.post("/admin/login", data={"username": "", "password": MASTER_KEY})
        assert no_token.status_code == 403 and SESSION_COOKIE not in no_token.cookies
        token = csrf_of(client.get("/admin/login").text)
        for username, password in (("ada", "wrong password!"), ("nobody", "whatever-password"), ("", "sk-nope")):
            wrong = client.post("/admin/login", data={"csrf_token": token, "username": username,
                                                      "password": password})
            assert wrong.status_code == 401
            assert "not right" in wrong.text and SESSION_COOKIE not in wrong.cookies
        empty = client.post("/admin/login", data={"csrf_token": token, "username": "ada", "password": ""})
        assert empty.status_code == 400 and "Password" in empty.text


def test_session_cookie_is_signed_scoped_and_expires(ui_gateway: UiGateway) -> None:
    session = Session(ui_gateway.base)
    signed_in = session.sign_in(ui_gateway.admin.name, ui_gateway.admin.password)
    cookie = next(c for c in signed_in.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "httponly" in flags and flags["samesite"].lower() == "samesite=strict"
    assert flags["path"] == "Path=/admin" and flags["max-age"] == "Max-Age=28800"
    assert "secure" not in flags  # served over http here
    value = session.http.cookies[SESSION_COOKIE]
    assert session.http.get("/admin").status_code == 200

    def with_cookie(cookie_value: str) -> int:
        with httpx.Client(base_url=ui_gateway.base, cookies={SESSION_COOKIE: cookie_value}) as other:
            return other.get("/admin/keys").status_code

    body, mac = value.split(".")
    assert with_cookie(value) == 200
    assert with_cookie(body + "." + mac[::-1]) == 303  # signature broken
    assert with_cookie(body[:-2] + "AA." + mac) == 303  # payload changed
    # Signed with the right key (derived from the master key) but expired, or for a role not held.
    signer = Signer(SecretStr(MASTER_KEY))
    master = signer.fingerprint(MASTER_KEY)
    fresh = {"sub": "master", "role": "admin", "csrf": "t", "cred": master}
    assert with_cookie(signer.sign({**fresh, "exp": int(time.time()) + 60})) == 200
    assert with_cookie(signer.sign({**fresh, "exp": int(time.time()) - 1})) == 303
    assert with_cookie(signer.sign({**fresh, "sub": "user:vic", "exp": int(time.time()) + 60})) == 303
    assert with_cookie(Signer(SecretStr("another secret")).sign({**fresh, "exp": int(time.time()) + 60})) == 303
    session.close()


def test_cookies_are_secure_over_https(ui_gateway: UiGateway) -> None:
    # uvicorn trusts X-Forwarded-Proto from loopback, as from a TLS-terminating proxy in front.
    with httpx.Client(base_url=ui_gateway.base, headers={"x-forwarded-proto": "https"}) as client:
        form = client.get("/admin/login")
        assert "secure" in form.headers["set-cookie"].lower()
        token = csrf_of(form.text)
        # httpx keeps a Secure cookie for https only: hand the sign-in form's cookie back by hand.
        client.cookies.set(LOGIN_COOKIE, form.cookies[LOGIN_COOKIE])
        signed_in = client.post("/admin/login", data={"csrf_token": token, "username": "", "password": MASTER_KEY},
                                follow_redirects=False)
        assert signed_in.status_code == 303
        cookie = next(c for c in signed_in.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
        assert "; secure" in cookie.lower()


def test_changing_a_password_ends_its_sessions(ui_gateway: UiGateway) -> None:
    name, password = f"temp-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    assert admin_user(ui_gateway.gw, "create", "--username", name, "--role", "viewer", password=password
                      ).returncode == 0
    short = admin_user(ui_gateway.gw, "create", "--username", name + "x", password="short")
    assert short.returncode == 2 and "at least 12" in short.stderr
    session = Session(ui_gateway.base)
    assert session.sign_in(name, password).status_code == 303
    assert session.http.get("/admin").status_code == 200
    assert admin_user(ui_gateway.gw, "password", "--username", name, password=password + "-new").returncode == 0
    assert session.http.get("/admin").status_code == 303
    assert admin_user(ui_gateway.gw, "delete", "--username", name).returncode == 0
    listed = admin_user(ui_gateway.gw, "list")
    assert "ada\tadmin" in listed.stdout and name not in listed.stdout
    session.close()


def test_pages_carry_a_strict_content_security_policy(admin_http: Session) -> None:
    page = admin_http.http.get("/admin")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text and " style=" not in page.text


def test_a_key_is_rendered_once_when_made_and_rotated_never_after(admin_http: Session, ui_gateway: UiGateway,
                                                                  api: httpx.Client) -> None:
    made = admin_http.post("/admin/keys", {"name": "shown-once", "allowed_models": "gpt-test"})
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    key = re.search(r'id="new-key">([^<]+)<', made.text)
    assert key is not None
    key_id = re.search(r'href="/admin/keys/(key_[0-9a-f]+)"', made.text)
    assert key_id is not None
    rotated = admin_http.post(f"/admin/keys/{key_id.group(1)}/rotate", {"grace_seconds": "0"})
    new_key = re.search(r'id="new-key">([^<]+)<', rotated.text)
    assert rotated.status_code == 200 and new_key is not None and new_key.group(1) != key.group(1)
    secrets_shown = [key.group(1), new_key.group(1)]
    # The rotated key works, and after it nothing renders either of them.
    ok = httpx.post(ui_gateway.gw.url + "/chat/completions", headers={"authorization": f"Bearer {new_key.group(1)}"},
                    json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert ok.status_code == 200
    pages = [*PAGES, f"/admin/keys/{key_id.group(1)}", f"/admin/requests?key={key_id.group(1)}",
             f"/admin/audit?target_type=key&target_id={key_id.group(1)}"]
    for path in pages:
        html = admin_http.http.get(path).text
        assert not [s for s in secrets_shown if s in html], path
    audit = api.get("/audit", params={"target_type": "key", "target_id": key_id.group(1)}).json()["data"]
    assert [e["action"] for e in audit] == ["key.rotate", "key.create"] and audit[0]["actor"] == "user:ada"


def test_bad_input_names_the_field(admin_http: Session) -> None:
    cases = [
        ("/admin/teams", {"name": "", "rpm": "1"}, "name"),
        ("/admin/teams", {"name": "t", "budget_usd": "1.0000001"}, "budget_usd"),
        ("/admin/teams", {"name": "t", "metadata": "[1, 2]"}, "metadata"),
        ("/admin/keys", {"allowed_models": "a, a"}, "allowed_models"),
        ("/admin/keys", {"expires_at": "2001-01-01T00:00"}, "expires_at"),
        ("/admin/keys", {"team_id": "team_nope"}, "team_id"),
    ]
    for path, form, field in cases:
        refused = admin_http.post(path, form)
        assert refused.status_code == 400, (path, form)
        assert f'id="e-{field}"' in refused.text, (path, field)
        assert 'id="form-error"' in refused.text


def test_a_prompt_template_changes_only_for_an_admin_with_the_token(admin_http: Session, viewer_http: Session,
                                                                    api: httpx.Client) -> None:
    template = api.post("/prompts", json={"name": f"guarded-{secrets.token_hex(3)}",
                                          "messages": [{"role": "user", "content": "hi"}]}).json()
    page = viewer_http.http.get(f"/admin/prompts/{template['id']}")
    assert page.status_code == 200
    assert re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', page.text) == ["/admin/logout"]
    form = {"role_0": "user", "content_0": "changed", "label": "production", "version": "1", "action": "move"}
    for path in (f"/admin/prompts/{template['id']}/versions", f"/admin/prompts/{template['id']}/labels"):
        assert viewer_http.post(path, form, token=viewer_http.csrf("/admin")).status_code == 403, path
        for token in ("", "forged"):
            assert admin_http.post(path, form, token=token).status_code == 403, (path, token)
    after = api.get(f"/prompts/{template['id']}").json()
    assert len(after["versions"]) == 1 and after["labels"] == {}
