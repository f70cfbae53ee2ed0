"""Hostile input through the admin UI's forms and filters: a page that names the field with a 400,
never a 500, and nothing written."""

from __future__ import annotations

import httpx
import pytest

from tests.admin_ui.conftest import Session, UiGateway
from tests.procs import MASTER_KEY as MASTER

NESTED = "[" * 300 + "]" * 300


@pytest.mark.parametrize(("path", "form", "field"), [
    ("/admin/teams", {"name": "a\x00b"}, "name"),
    ("/admin/teams", {"name": "hostile-rpm", "rpm": "²"}, "rpm"),
    ("/admin/teams", {"name": "hostile-tpm", "tpm": "9" * 30}, "tpm"),
    ("/admin/teams", {"name": "hostile-meta", "metadata": '{"k": "\\u0000"}'}, "metadata"),
    ("/admin/teams", {"name": "hostile-deep", "metadata": '{"k": ' + NESTED + "}"}, "metadata"),
    ("/admin/keys", {"name": "k", "max_parallel": "٣"}, "max_parallel"),
    ("/admin/keys", {"name": "k", "expires_at": "9999-12-31T23:59:59-23:59"}, "expires_at"),
    ("/admin/keys", {"name": "k", "allowed_models": "gpt-test, no-such-model"}, "allowed_models"),
    ("/admin/keys", {"name": "k\x00"}, "name"),
])
def test_a_hostile_form_is_a_400_naming_the_field(admin_http: Session, ui_gateway: UiGateway, path: str,
                                                  form: dict[str, str], field: str) -> None:
    with httpx.Client(base_url=ui_gateway.base + "/admin/api", headers={"authorization": f"Bearer {MASTER}"}) as api:
        before = api.get("/audit", params={"limit": 1}).json()["data"]
        response = admin_http.post(path, form)
        assert response.status_code == 400, response.text[:500]
        assert f'id="f-{field}"' in response.text and "invalid" in response.text.lower()
        assert api.get("/audit", params={"limit": 1}).json()["data"] == before


@pytest.mark.parametrize("path", [
    "/admin/keys?team_id=%00", "/admin/keys?after=%00", "/admin/teams?after=a%00", "/admin/audit?before=%C2%B2",
    "/admin/audit?target_id=%00", "/admin/requests?limit=%C2%B2", "/admin/requests?model=%00",
    "/admin/requests?status=%D9%A3", "/admin/requests?start=9999-12-31T23:59:59-23:59",
])
def test_a_hostile_filter_is_a_400(admin_http: Session, path: str) -> None:
    assert admin_http.http.get(path).status_code == 400


def test_a_request_page_at_the_end_of_time_is_not_found(admin_http: Session) -> None:
    response = admin_http.http.get("/admin/requests/req_x", params={"ts": "9999-12-31T23:59:59.999999+00:00"})
    assert response.status_code == 404


def test_a_wrong_method_names_the_right_ones(admin_http: Session) -> None:
    response = admin_http.http.request("TRACE", "/admin/api/keys")
    assert response.status_code == 405 and "POST" in response.headers["allow"]
