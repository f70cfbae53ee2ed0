"""The admin API's later parts (privacy, prompt templates, complexity, forecasts, recommendations) held to the
OpenAPI document on both stores: every answer has the documented shape, and every input the
document refuses is a 400 naming the field."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import jsonschema
import pytest

from tests.admin.test_admin_api import assert_error, conforms
from tests.procs import Gateway

V1 = [{"role": "system", "content": "Greet {{name}}."}, {"role": "user", "content": "Hi"}]
V2 = [{"role": "system", "content": "Greet {{name}} warmly."}, {"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def openapi(admin_gateway: Gateway) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(admin_gateway.base + "/admin/api/openapi.json").json()
    return document


def response_schema(document: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    content = document["paths"]["/admin/api" + path][method]["responses"][str(status)]["content"]
    return next(iter(content.values()))["schema"]  # type: ignore[no-any-return]


def holds(document: dict[str, Any], path: str, method: str, response: httpx.Response) -> Any:
    """The response's status is documented for the operation, and its body has that status's shape."""
    schema = response_schema(document, path, method, response.status_code)
    body = response.json()
    jsonschema.validate(body, {**schema, "components": document["components"]})
    return body


def test_prompt_templates_answer_as_documented(admin: httpx.Client, openapi: dict[str, Any]) -> None:
    name = f"doc-{secrets.token_hex(4)}"
    created = holds(openapi, "/prompts", "post", admin.post("/prompts", json={
        "name": name, "messages": V1, "model": "gpt-test", "params": {"temperature": 0.2}, "note": "first"}))
    tid = created["id"]
    p = "/prompts/{template_id}"
    holds(openapi, "/prompts", "get", admin.get("/prompts"))
    holds(openapi, p + "/versions", "post", admin.post(f"/prompts/{tid}/versions", json={"messages": V2}))
    holds(openapi, p + "/versions/{version}", "get", admin.get(f"/prompts/{tid}/versions/2"))
    holds(openapi, p + "/labels/{label}", "put", admin.put(f"/prompts/{tid}/labels/staging", json={"version": 1}))
    holds(openapi, p + "/labels/{label}", "put", admin.put(f"/prompts/{tid}/labels/staging", json={"version": 2}))
    back = holds(openapi, p + "/labels/{label}/rollback", "post", admin.post(f"/prompts/{tid}/labels/staging/rollback"))
    assert back["version"] == 1 and back["previous_version"] == 2
    diff = holds(openapi, p + "/diff", "get", admin.get(f"/prompts/{tid}/diff", params={"from": 1, "to": 2}))
    assert diff["from"] == 1 and "+[system] Greet {{name}} warmly." in diff["diff"]
    holds(openapi, p + "/stats", "get", admin.get(f"/prompts/{tid}/stats"))
    template = holds(openapi, p, "get", admin.get(f"/prompts/{tid}"))
    assert [v["version"] for v in template["versions"]] == [1, 2]
    audit = admin.get("/audit", params={"target_type": "prompt", "target_id": tid}).json()
    conforms(openapi, "AuditList", audit)
    assert {e["action"] for e in audit["data"]} == {"prompt.create", "prompt.version", "prompt.label",
                                                    "prompt.rollback"}


@pytest.mark.parametrize(("method", "path", "body", "param"), [
    ("post", "/prompts", {"name": "x", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ("post", "/prompts", {"name": "x", "messages": [{"role": "user", "content": "a\x00b"}]}, "messages[0].content"),
    ("post", "/prompts", {"name": "x", "messages": V1, "params": {"api_key": "x"}}, "params"),
    ("post", "/prompts", {"name": "x", "messages": V1, "variables": ["name", "extra"]}, "variables"),
    ("post", "/prompts", {"name": "x", "messages": V1, "variables": None}, "variables"),
    ("post", "/prompts", {"name": "", "messages": V1}, "name"),
    ("post", "/prompts", {"messages": V1}, "name"),
    ("post", "/prompts", {"name": "x", "messages": []}, "messages"),
    ("post", "/prompts", {"name": "x", "messages": V1, "extra": 1}, "extra"),
    ("post", "/prompts/tmpl_x/versions", {"messages": V1, "note": "n" * 1001}, "note"),
    ("put", "/prompts/tmpl_x/labels/staging", {"version": "1"}, "version"),
    ("put", "/prompts/tmpl_x/labels/staging", {"version": 0}, "version"),
    ("put", "/prompts/tmpl_x/labels/42", {"version": 1}, "label"),
    ("put", "/prompts/tmpl_x/labels/%C3%A9t%C3%A9", {"version": 1}, "label"),
    ("get", "/prompts/tmpl_x/versions/%C2%B2", None, "version"),
    ("get", "/prompts/tmpl%00x", None, "template_id"),
    ("get", "/prompts/tmpl_x/diff?from=1", None, "to"),
    ("get", "/prompts/tmpl_x/stats?start=0001-01-01&end=0001-01-02", None, None),
    ("post", "/privacy/erase", {"user": "a", "key": "b"}, None),
    ("post", "/privacy/erase", {"user": None}, "user"),
    ("post", "/privacy/export", {"key": "k\x01"}, "key"),
    ("post", "/privacy/export", {}, "user"),
    ("get", "/routing/complexity", None, "model"),
    ("get", "/routing/complexity?model=gpt-test", None, "model"),
    ("get", "/routing/complexity?model=auto&end=0001-01-03", None, None),
    ("get", "/recommendations?max_latency_ratio=0.5", None, "max_latency_ratio"),
    ("get", "/recommendations?max_error_rate_increase=nan", None, "max_error_rate_increase"),
    ("get", "/recommendations?cache_ttl_s=1e400", None, "cache_ttl_s"),
    ("get", "/recommendations?days=0", None, "days"),
    ("get", "/recommendations?idle_weeks=%C2%B2", None, "idle_weeks"),
])  # fmt: skip
def test_what_the_document_refuses_is_a_400_naming_the_field(admin: httpx.Client, method: str, path: str,
                                                            body: Any, param: str | None) -> None:
    response = admin.request(method, path, json=body)
    if param is None and response.status_code in (200, 404):
        return  # a range at the start of time is served (or its template is unknown), never a 500
    assert_error(response, 400, param)


def test_privacy_complexity_and_forecasts_answer_as_documented(admin: httpx.Client, openapi: dict[str, Any]) -> None:
    team = admin.post("/teams", json={"name": f"fc-{secrets.token_hex(4)}", "budget_usd": "100",
                                      "budget_period": "monthly"}).json()
    forecasts = holds(openapi, "/forecasts", "get", admin.get("/forecasts"))
    assert team["id"] in {f["id"] for f in forecasts["data"]}
    report = holds(openapi, "/routing/complexity", "get", admin.get("/routing/complexity", params={"model": "auto"}))
    assert report["tiers"] == ["small", "large"]
    erased = holds(openapi, "/privacy/erase", "post", admin.post("/privacy/erase", json={"user": "someone"}))
    assert erased["subject_ref"].startswith("user-")
    export = admin.post("/privacy/export", json={"user": "someone"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/jsonl")
    assert "application/jsonl" in openapi["paths"]["/admin/api/privacy/export"]["post"]["responses"]["200"]["content"]
    assert openapi["paths"]["/admin/api/routing/complexity"]["get"]["parameters"][0]["schema"]["enum"] == ["auto"]
    advice = holds(openapi, "/recommendations", "get", admin.get("/recommendations", params={
        "days": 7, "min_requests": 5, "max_error_rate_increase": "0.02", "max_latency_ratio": "1.5",
        "cache_ttl_s": 600, "idle_weeks": 2}))
    assert advice["criteria"]["min_requests"] == 5 and advice["criteria"]["max_latency_ratio"] == 1.5
