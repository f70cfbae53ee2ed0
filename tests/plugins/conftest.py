"""One gateway with plugins per team and per key, on the real Redis and the embedded SQLite ledger.

Team and key ids are made by the key store, so a first gateway creates them through the admin
API and stops; the gateway under test then starts on the same data directory with a `plugins:`
section naming those ids. The sample third-party plugin (examples/sample_plugin) is installed
into a temporary directory with pip and found through its entry point. Redis must be up: these
tests fail, never skip, without it; the session deletes only the keys under its own prefix.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

SHARED_REDIS = os.environ.get("GATEWAY_TEST_REDIS", "redis://127.0.0.1:6379/0")
REPO = Path(__file__).resolve().parents[2]
ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}
# Waiting for the ledger writer or Redis expiry is not a speed check: it only bounds a failure.
WAIT_S = 20.0


@dataclass(frozen=True)
class Tenant:
    team_id: str | None
    key_id: str
    key: str


@dataclass(frozen=True)
class Tenants:
    alpha: Tenant  # mask PII, flag injection, content rules, request limits, cache
    alpha2: Tenant  # another key of team alpha: shares its cache
    beta: Tenant  # refuse PII and injection, allowed parameters, cache on request only
    gamma: Tenant  # PII masked in logs only, the semantic cache
    shout: Tenant  # the sample plugin, by its entry point
    skip: Tenant  # the sample plugin failing in `before`, skipped
    fail: Tenant  # the sample plugin failing in `before`, failing the request
    chunk_fail: Tenant  # the sample plugin failing on a stream chunk


def models(upstream: FakeUpstream) -> list[dict[str, Any]]:
    price = {"input_per_mtok": "2", "output_per_mtok": "8"}
    return [
        {"name": "chat", "deployments": [deployment(upstream, price=price)]},
        # The fake's native Responses API, for /v1/responses relayed as it is.
        {"name": "chat-native", "deployments": [deployment(upstream, price=price, responses_api="native")]},
        {"name": "embed", "deployments": [deployment(upstream, model="text-embedding-3-small")]},
    ]


def plugin_section(t: Tenants) -> dict[str, Any]:
    assert t.alpha.team_id and t.beta.team_id and t.gamma.team_id
    return {
        "on_failure": "error",
        "teams": {
            t.alpha.team_id: [
                {"name": "request_limits", "config": {"max_tokens": 500, "max_prompt_chars": 4000}},
                {"name": "pii", "config": {"mode": "mask", "national_ids": {"ssn_us": r"\b\d{3}-\d{2}-\d{4}\b"}}},
                {"name": "injection", "config": {"action": "flag"}},
                {"name": "content", "config": {"deny": ["project aurora"], "allow": ["project aurora borealis"],
                                               "input": "refuse", "output": "mask"}},
                {"name": "cache", "config": {"ttl_s": 600}},
            ],
            t.beta.team_id: [
                {"name": "request_limits", "config": {"allowed_params": ["temperature", "max_tokens", "fake"]}},
                {"name": "pii", "id": "pii-strict", "config": {"mode": "refuse"}},
                {"name": "injection", "config": {"action": "refuse"}},
                {"name": "cache", "config": {"opt_in": "header"}},
            ],
            t.gamma.team_id: [
                {"name": "pii", "config": {"mode": "log_only", "response": "off"}},
                {"name": "semantic_cache", "config": {"embedding_model": "embed", "threshold": 0.95}},
            ],
        },
        "keys": {
            t.shout.key_id: [{"name": "stamp", "config": {"value": "sample-v1", "shout": True}}],
            t.skip.key_id: [{"name": "stamp", "id": "stamp-skip", "config": {"fail_in": "before"},
                             "on_failure": "skip"}],
            t.fail.key_id: [{"name": "stamp", "id": "stamp-fail", "config": {"fail_in": "before"}}],
            t.chunk_fail.key_id: [{"name": "stamp", "id": "stamp-chunk", "config": {"fail_in": "on_chunk"}}],
        },
    }


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    client = redis.Redis.from_url(SHARED_REDIS)
    client.ping()  # the shared Redis must be up: fail, never skip
    prefix = "pl" + secrets.token_hex(5)
    yield prefix
    for key in client.scan_iter(match=prefix + ":*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def sample_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/sample_plugin, pip-installed into a directory of its own (its dist-info carries the
    entry point its pyproject.toml declares); the gateway gets it on PYTHONPATH."""
    tmp = tmp_path_factory.mktemp("sample-plugin")
    source = tmp / "src"
    shutil.copytree(REPO / "examples" / "sample_plugin", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(source)], check=True, timeout=300)
    return site


def _create(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body, headers=ADMIN)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def tenants_and_data(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> tuple[Tenants, Path]:
    tmp = tmp_path_factory.mktemp("plugins-provision")
    data_dir = tmp / "data"
    gw = Gateway(tmp, models(upstream), settings={"data_dir": str(data_dir)})
    try:
        with httpx.Client(base_url=gw.base + "/admin/api", timeout=10) as admin:
            teams = {name: _create(admin, "/teams", {"name": name})["id"] for name in ("alpha", "beta", "gamma")}

            def tenant(name: str, team: str | None) -> Tenant:
                body = {"name": name, **({"team_id": teams[team]} if team else {})}
                key = _create(admin, "/keys", body)
                return Tenant(teams[team] if team else None, key["id"], key["key"])

            tenants = Tenants(
                alpha=tenant("alpha", "alpha"), alpha2=tenant("alpha2", "alpha"), beta=tenant("beta", "beta"),
                gamma=tenant("gamma", "gamma"), shout=tenant("shout", None), skip=tenant("skip", None),
                fail=tenant("fail", None), chunk_fail=tenant("chunk-fail", None),
            )
    finally:
        gw.close()
    return tenants, data_dir


@pytest.fixture(scope="session")
def tenants(tenants_and_data: tuple[Tenants, Path]) -> Tenants:
    return tenants_and_data[0]


@pytest.fixture(scope="session")
def plugin_gateway(
    upstream: FakeUpstream,
    tenants_and_data: tuple[Tenants, Path],
    redis_prefix: str,
    sample_site: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    tenants, data_dir = tenants_and_data
    tmp = tmp_path_factory.mktemp("plugins-gw")
    settings = {"data_dir": str(data_dir), "redis_url": SHARED_REDIS, "redis_prefix": redis_prefix,
                "ledger_flush_s": 0.05, "log_prompts": True}
    pythonpath = os.pathsep.join(p for p in (str(sample_site), os.environ.get("PYTHONPATH")) if p)
    log = tmp / "gateway.log"
    gw = Gateway(tmp, models(upstream), settings=settings, env={"PYTHONPATH": pythonpath}, log=log,
                 plugins=plugin_section(tenants))
    gw.log_file = log  # type: ignore[attr-defined]
    gw.data_dir = data_dir  # type: ignore[attr-defined]
    yield gw
    gw.close()


def client_for(gw: Gateway, tenant: Tenant) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=tenant.key, max_retries=0)


def ledger_row(gw: Gateway, request_id: str) -> dict[str, Any]:
    """The request's row in the embedded SQLite ledger, once the writer has written it."""
    path = Path(gw.data_dir) / "gateway.db"  # type: ignore[attr-defined]
    deadline = time.monotonic() + WAIT_S
    while True:
        with sqlite3.connect(path) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM ledger_requests WHERE request_id = ?", (request_id,)).fetchone()
        if row is not None:
            return dict(row)
        if time.monotonic() > deadline:
            raise AssertionError(f"no ledger row for {request_id} after {WAIT_S}s")
        time.sleep(0.05)


def metric_value(gw: Gateway, name: str, **labels: str) -> float:
    text = httpx.get(gw.base + "/metrics", headers=ADMIN, timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total
