"""Through a real gateway: requests with `user` from the OpenAI SDK, then the admin API and the CLI."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import yaml
from redis.asyncio import Redis

from tests.dbs import REDIS_URL, create_pg_database, drop_pg_database, redis_prefix
from tests.privacy.scan import holding
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp(f"privacy-gw-{request.param}")
    settings: dict[str, Any] = {"ledger_flush_s": 0.05}
    dsn = None
    if request.param == "postgres":
        dsn = create_pg_database()
        settings |= {"database_url": dsn, "redis_url": REDIS_URL, "redis_prefix": redis_prefix()}
    gateway = Gateway(tmp, [{"name": "gpt-test", "deployments": [deployment(upstream)]}], settings=settings,
                      plugins={"global": [{"name": "cache", "config": {"ttl_s": 600}}]})
    yield gateway
    gateway.close()
    if dsn is not None:
        drop_pg_database(dsn)


def _admin(gw: Gateway) -> httpx.Client:
    return httpx.Client(base_url=gw.base + "/admin/api/privacy", headers={"authorization": f"Bearer {MASTER_KEY}"},
                        timeout=30)


def _export(gw: Gateway, **subject: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with _admin(gw) as admin:
        response = admin.post("/export", json=subject)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jsonl")
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    return lines[0], lines[1:]


async def _scan(gw: Gateway, needle: str) -> list[str]:
    """Where the gateway's database (and Redis, when it has one) still holds `needle`."""
    settings = yaml.safe_load(gw.config.read_text())["settings"]
    dsn = settings.get("database_url")
    sqlite = None if dsn else Path(settings["data_dir"]) / "gateway.db"
    if "redis_url" not in settings:
        return await holding(needle, dsn=dsn, sqlite=sqlite)
    redis = Redis.from_url(settings["redis_url"])
    try:
        return await holding(needle, dsn=dsn, sqlite=sqlite, redis=redis, prefix=settings["redis_prefix"])
    finally:
        await redis.aclose()


def _wait_ledger(gw: Gateway, user: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while _export(gw, user=user)[0]["counts"]["ledger"] < count:
        assert time.monotonic() < deadline, "the ledger rows never arrived"
        time.sleep(0.1)


def test_an_end_users_requests_are_exported_then_erased_through_the_admin_api(gw: Gateway) -> None:
    user = f"erin-{secrets.token_hex(4)}@example.com"
    client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    for i in range(3):
        client.chat.completions.create(model="gpt-test", user=user,
                                       messages=[{"role": "user", "content": f"question {i} {user}"}])
    client.chat.completions.create(model="gpt-test", user="someone-else", messages=[{"role": "user", "content": "x"}])
    _wait_ledger(gw, user, 3)

    manifest, records = _export(gw, user=user)
    assert manifest["subject"] == {"kind": "user", "id": user}
    assert manifest["counts"]["ledger"] == 3
    # What is not searched is said, so nobody assumes it was.
    assert set(manifest["not_searched"]) == {"request_logs", "in_process_cache", "semantic_cache", "ledger_spill"}
    # Redis holds the cache (Postgres variant): the three answers are attributed to the user.
    redis_backed = "redis_url" in gw.config.read_text()
    assert manifest["counts"]["cache"] == (3 if redis_backed else 0)
    assert sum(r["source"] == "ledger" and r["record"]["end_user"] == user for r in records) == 3

    with _admin(gw) as admin:
        erased = admin.post("/erase", json={"user": user})
        assert erased.status_code == 200, erased.text
        assert erased.json()["counts"]["ledger"] == 3
        assert erased.json()["counts"]["cache"] == (3 if redis_backed else 0)
        assert user not in erased.text
        audit = httpx.get(gw.base + "/admin/api/audit", params={"target_type": "privacy_subject"},
                          headers={"authorization": f"Bearer {MASTER_KEY}"}).json()
    assert {e["action"] for e in audit["data"]} >= {"privacy.export", "privacy.erase"}
    assert user not in orjson.dumps(audit).decode()
    manifest, records = _export(gw, user=user)
    assert manifest["counts"]["ledger"] == 0 and records == []
    assert _export(gw, user="someone-else")[0]["counts"]["ledger"] == 1


def test_bad_subjects_are_400s_and_a_plain_key_is_refused(gw: Gateway) -> None:
    with _admin(gw) as admin:
        for body, param in (({}, "user"), ({"user": "a", "key": "b"}, "user"), ({"user": ""}, "user"),
                            ({"user": 5}, "user"), ({"user": "a", "extra": 1}, "extra")):
            response = admin.post("/erase", json=body)
            assert response.status_code == 400, body
            assert response.json()["error"]["param"] == param, response.text
        assert admin.get("/erase").status_code == 405
        key = httpx.post(gw.base + "/admin/api/keys", json={"name": "plain"},
                         headers={"authorization": f"Bearer {MASTER_KEY}"}).json()["key"]
        refused = httpx.post(gw.base + "/admin/api/privacy/export", json={"user": "x"},
                             headers={"authorization": f"Bearer {key}"})
    assert refused.status_code == 403 and refused.json()["error"]["type"]


def test_the_cli_exports_and_erases_a_key(gw: Gateway, tmp_path: Path) -> None:
    key = httpx.post(gw.base + "/admin/api/keys", json={"name": "leaving"},
                     headers={"authorization": f"Bearer {MASTER_KEY}"}).json()
    client = openai.OpenAI(base_url=gw.url, api_key=key["key"], max_retries=0)
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hello"}])
    deadline = time.monotonic() + 30
    while _export(gw, key=key["id"])[0]["counts"]["ledger"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    env = {"GATEWAY_MASTER_KEY": MASTER_KEY, "PATH": "/usr/bin:/bin"}
    out = tmp_path / "export.jsonl"
    done = subprocess.run([sys.executable, "-m", "gateway", "privacy", "export", "--config", str(gw.config),
                           "--key", key["id"], "--output", str(out)], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert lines[0]["counts"]["ledger"] == 1 and lines[1]["record"]["key_id"] == key["id"]

    refused = subprocess.run([sys.executable, "-m", "gateway", "privacy", "erase", "--config", str(gw.config),
                              "--key", key["id"]], env=env, capture_output=True, timeout=60)
    assert refused.returncode == 2 and b"--yes" in refused.stderr
    done = subprocess.run([sys.executable, "-m", "gateway", "privacy", "erase", "--config", str(gw.config),
                           "--key", key["id"], "--yes"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result["counts"]["ledger"] == 1 and result["replacement_key_id"].startswith("erased-")
    assert _export(gw, key=key["id"])[0]["counts"]["ledger"] == 0
    # The key's use names it nowhere; its own record (the credential and its audit trail) stays, as
    # docs/privacy.md says.
    left = asyncio.run(_scan(gw, key["id"]))
    assert {place.split(":")[0] for place in left} == {"api_keys", "api_key_secrets", "audit_log"}, left


def test_the_privacy_page_exports_and_erases_for_an_admin(gw: Gateway) -> None:
    from tests.admin_ui.conftest import Session

    user = f"page-{secrets.token_hex(4)}"
    client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    client.chat.completions.create(model="gpt-test", user=user, messages=[{"role": "user", "content": "hi"}])
    _wait_ledger(gw, user, 1)
    ui = Session(gw.base)
    try:
        assert ui.sign_in("", MASTER_KEY).status_code == 303
        assert 'id="privacy"' in ui.http.get("/admin/privacy").text
        exported = ui.post("/admin/privacy", {"kind": "user", "id": user, "action": "export"}, token=None)
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/jsonl")
        assert orjson.loads(exported.content.splitlines()[0])["counts"]["ledger"] == 1
        unconfirmed = ui.post("/admin/privacy", {"kind": "user", "id": user, "action": "erase"})
        assert unconfirmed.status_code == 400 and _export(gw, user=user)[0]["counts"]["ledger"] == 1
        erased = ui.post("/admin/privacy", {"kind": "user", "id": user, "action": "erase", "confirm": "yes"})
        assert erased.status_code == 200 and 'id="erased"' in erased.text and user not in erased.text.split(
            'id="erased"')[1]
    finally:
        ui.close()
    assert _export(gw, user=user)[0]["counts"]["ledger"] == 0


def test_after_an_erasure_the_id_is_in_no_table_and_no_redis_key(gw: Gateway) -> None:
    """What the gateway itself wrote, not rows a test seeded: chat with a tag naming the user, stored
    Responses API answers under `user` and under `safety_identifier`, cached answers."""
    user = f"fay-{secrets.token_hex(4)}@example.com"
    client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    for i in range(2):
        client.chat.completions.create(model="gpt-test", user=user, extra_headers={"x-gateway-tags": f"who={user}"},
                                       messages=[{"role": "user", "content": f"scan {i}"}])
    client.responses.create(model="gpt-test", input="remember me", user=user)
    client.responses.create(model="gpt-test", input="and me", extra_body={"safety_identifier": user})
    _wait_ledger(gw, user, 4)

    before = asyncio.run(_scan(gw, user))
    assert any(place.startswith("ledger_requests") for place in before), before
    assert any(place.startswith("responses") for place in before), before
    with _admin(gw) as admin:
        erased = admin.post("/erase", json={"user": user}).json()
    assert erased["counts"]["ledger"] == 4 and erased["counts"]["responses"] == 2, erased
    assert asyncio.run(_scan(gw, user)) == []
