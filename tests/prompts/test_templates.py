"""Prompt templates through a real gateway on each store: versions, labels, rendering, the ledger, the audit log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.core.errors import InvalidRequest
from gateway.prompts.render import render
from tests.dbs import create_pg_database, drop_pg_database
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
V1 = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Greet {{name}} from {{city}}"}]
V2 = [{"role": "system", "content": "You are kind."}, {"role": "user", "content": "Welcome {{name}} of {{city}}"}]


def test_rendering_checks_variables_by_name() -> None:
    assert render(V1, ["city", "name"], {"name": "Ada", "city": "Paris"})[1]["content"] == "Greet Ada from Paris"
    # A value that looks like a placeholder stays as written.
    assert render(V1, ["city", "name"], {"name": "{{city}}", "city": "X"})[1]["content"] == "Greet {{city}} from X"
    for values, param in (({"name": "Ada"}, "prompt.variables.city"),
                          ({"name": "Ada", "city": "P", "mood": "x"}, "prompt.variables.mood"),
                          ({"name": ["x"], "city": "P"}, "prompt.variables.name"),
                          ("nope", "prompt.variables")):
        with pytest.raises(InvalidRequest) as caught:
            render(V1, ["city", "name"], values)
        assert caught.value.param == param


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp(f"prompts-{request.param}")
    settings: dict[str, Any] = {"ledger_flush_s": 0.05}
    dsn = None
    if request.param == "postgres":
        dsn = settings["database_url"] = create_pg_database()
    gateway = Gateway(tmp, [{"name": "gpt-test", "deployments": [deployment(upstream)]},
                            {"name": "gpt-other", "deployments": [deployment(upstream, model="fake-other")]}],
                      settings=settings)
    yield gateway
    gateway.close()
    if dsn is not None:
        drop_pg_database(dsn)


def _api(gw: Gateway) -> httpx.Client:
    return httpx.Client(base_url=gw.base + "/admin/api", headers=ADMIN, timeout=30)


def test_versions_labels_rendering_and_the_ledger(gw: Gateway) -> None:
    with _api(gw) as api:
        created = api.post("/prompts", json={"name": f"greet-{gw.port}", "messages": V1, "model": "gpt-test",
                                     "params": {"temperature": 0.2}})
        assert created.status_code == 201, created.text
        tid = created.json()["id"]
        v2 = api.post(f"/prompts/{tid}/versions", json={"messages": V2, "model": "gpt-other", "note": "kinder"})
        assert v2.status_code == 201 and v2.json()["version"] == 2
        diff = api.get(f"/prompts/{tid}/diff", params={"from": 1, "to": 2}).json()["diff"]
        assert "-[user] Greet {{name}} from {{city}}" in diff and "+[user] Welcome {{name}} of {{city}}" in diff
        assert "+model: gpt-other" in diff
        assert api.put(f"/prompts/{tid}/labels/production", json={"version": 1}).json()["version"] == 1

    client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)

    def ask(**prompt: Any) -> Any:
        return client.chat.completions.with_raw_response.create(
            model="", messages=[], extra_body={"prompt": {"id": tid, "variables": {"name": "Ada", "city": "Paris"},
                                                          **prompt}})

    first = ask()  # the production label: version 1, its model
    assert first.parse().choices[0].message.content.startswith("Greet Ada from Paris")
    second = ask(version="2")
    assert second.parse().choices[0].message.content.startswith("Welcome Ada of Paris")
    assert second.parse().model == "fake-other"

    with _api(gw) as api:
        moved = api.put(f"/prompts/{tid}/labels/production", json={"version": 2}).json()
        assert moved["previous_version"] == 1
        time.sleep(5.5)  # past the label cache's 5 s: every worker now reads the new version
        third = ask()
        assert third.parse().choices[0].message.content.startswith("Welcome Ada")
        back = api.post(f"/prompts/{tid}/labels/production/rollback").json()
        assert back["version"] == 1 and back["previous_version"] == 2
        template = api.get(f"/prompts/{tid}").json()
        assert template["labels"]["production"]["version"] == 1 and len(template["versions"]) == 2
        audit = httpx.get(gw.base + "/admin/api/audit", params={"target_type": "prompt", "target_id": tid},
                          headers=ADMIN).json()["data"]
        assert [e["action"] for e in audit][::-1] == ["prompt.create", "prompt.version", "prompt.label",
                                                      "prompt.label", "prompt.rollback"]

        ids = [r.headers["x-request-id"] for r in (first, second, third)]
        deadline = time.monotonic() + 30
        while True:
            rows = httpx.get(gw.base + "/admin/api/ledger/requests", params={"limit": 100},
                             headers=ADMIN).json()["data"]
            found = {r["request_id"]: r for r in rows if r["request_id"] in ids}
            if len(found) == 3:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert [(found[i]["template_id"], found[i]["template_version"]) for i in ids] == [(tid, 1), (tid, 2), (tid, 2)]
        stats = {s["version"]: s for s in api.get(f"/prompts/{tid}/stats").json()["data"]}
        assert stats[1]["requests"] == 1 and stats[2]["requests"] == 2 and stats[2]["errors"] == 0


def test_bad_templates_and_references_are_400s_naming_the_field(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    with _api(gw) as api:
        tid = api.post("/prompts", json={"name": f"bad-{gw.port}", "messages": V1}).json()["id"]
        cases = [({"name": "x", "messages": V1, "variables": ["name"]}, "variables"),
                 ({"name": "x", "messages": V1, "variables": ["name", "city", "extra"]}, "variables"),
                 ({"name": "x", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
                 ({"name": "x", "messages": V1, "params": {"api_key": "x"}}, "params"),
                 ({"name": f"bad-{gw.port}", "messages": V1}, "name")]
        for body, param in cases:
            response = api.post("/prompts", json=body)
            assert response.status_code in (400, 409), body
            assert response.json()["error"]["param"] == param, response.text
        assert api.put(f"/prompts/{tid}/labels/production", json={"version": 9}).status_code == 404
        assert api.put(f"/prompts/{tid}/labels/7", json={"version": 1}).json()["error"]["param"] == "label"
        assert api.post(f"/prompts/{tid}/labels/staging/rollback").status_code == 409
        assert api.get("/prompts/tmpl_nope").status_code == 404
    for prompt, param in (({"id": tid, "variables": {"name": "Ada"}}, "prompt.variables.city"),
                          ({"id": tid, "variables": {"name": "A", "city": "B", "x": "y"}}, "prompt.variables.x"),
                          ({"id": tid, "version": "9", "variables": {}}, "prompt.version"),
                          ({"id": tid, "version": "staging", "variables": {}}, "prompt.version"),
                          ({"id": "tmpl_nope"}, "prompt.id"),
                          ({"id": tid, "what": 1}, "prompt")):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}],
                                           extra_body={"prompt": prompt})
        assert caught.value.body["param"] == param, (prompt, caught.value.body)  # type: ignore[index]


def test_the_prompts_pages_show_versions_side_by_side_and_move_labels(gw: Gateway) -> None:
    from tests.admin_ui.conftest import Session

    with _api(gw) as api:
        tid = api.post("/prompts", json={"name": f"ui-{gw.port}", "messages": V1}).json()["id"]
        api.post(f"/prompts/{tid}/versions", json={"messages": V2, "note": "second"})
    ui = Session(gw.base)
    try:
        assert ui.sign_in("", MASTER_KEY).status_code == 303
        assert f'href="/admin/prompts/{tid}"' in ui.http.get("/admin/prompts").text
        page = ui.http.get(f"/admin/prompts/{tid}").text
        assert 'data-version="1"' in page and 'data-version="2"' in page
        assert "+[user] Welcome {{name}} of {{city}}" in page.replace("&#123;", "{").replace("&#125;", "}")
        moved = ui.post(f"/admin/prompts/{tid}/labels", {"label": "staging", "version": "2", "action": "move"},
                        token=None)
        assert moved.status_code == 303
        refused = ui.post(f"/admin/prompts/{tid}/labels", {"label": "staging", "version": "9", "action": "move"})
        assert refused.status_code == 404 and "no version 9" in refused.text
        page = ui.http.get(f"/admin/prompts/{tid}").text
        assert 'data-label="staging"' in page
        compare_and_count(gw, ui, tid)
    finally:
        ui.close()


def compare_and_count(gw: Gateway, ui: Any, tid: str) -> None:
    """Any two versions diffed from the page's own form; each version's requests side by side."""
    with _api(gw) as api:
        api.post(f"/prompts/{tid}/versions", json={"messages": [V1[0], {"role": "user", "content": "Bye {{name}}"}],
                                                   "variables": ["name"]})
    page = ui.http.get(f"/admin/prompts/{tid}").text
    form = page.split('id="diff-versions"', 1)[1].split("</form>", 1)[0]
    assert form.count('<option value="3"') == 2 and 'name="from"' in form and 'name="to"' in form
    assert "Diff v2 → v3" in page  # the newest two, until others are chosen
    chosen = ui.http.get(f"/admin/prompts/{tid}", params={"from": "1", "to": "3"}).text
    text = chosen.split('id="diff"', 1)[1].replace("&#123;", "{").replace("&#125;", "}")
    assert "-[user] Greet {{name}} from {{city}}" in text and "+[user] Bye {{name}}" in text
    client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    for version, values in (("1", {"name": "A", "city": "B"}), ("3", {"name": "A"}), ("3", {"name": "B"})):
        client.chat.completions.create(model="gpt-test", messages=[],
                                       extra_body={"prompt": {"id": tid, "version": version, "variables": values}})
    deadline = time.monotonic() + 30
    while True:
        page = ui.http.get(f"/admin/prompts/{tid}").text
        rows = {v: page.split(f'<tr data-version="{v}">', 1)[1].split("</tr>", 1)[0] for v in (1, 2, 3)}
        if '<td class="num">2</td>' in rows[3]:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    assert '<td class="num">1</td>' in rows[1] and '<td class="num">0</td>' in rows[2]
