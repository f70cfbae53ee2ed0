"""A private PostgreSQL stopped and started under a gateway: keys it knows keep working, the rest
get a clear 503 (never a 500, never a hang), and everything recovers when the database returns."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.accounting.ledger.helpers import PrivatePostgres
from tests.dbs import REDIS_URL, redis_prefix
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def chat(gw: Gateway, key: str) -> None:
    openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0).chat.completions.create(
        model="gpt-test", messages=MESSAGES
    )


def test_keys_while_postgres_is_down(upstream: FakeUpstream, tmp_path: Path) -> None:
    pg = PrivatePostgres()
    gw = None
    try:
        # A short cache TTL: the known key is past it when the database goes away.
        settings = {"database_url": pg.dsn, "redis_url": REDIS_URL, "redis_prefix": redis_prefix(),
                    "auth_cache_ttl_s": 0.2}
        gw = Gateway(tmp_path, [{"name": "gpt-test", "deployments": [deployment(upstream)]}], settings=settings)
        admin = httpx.Client(base_url=gw.base + "/admin/api", headers={"authorization": f"Bearer {MASTER_KEY}"},
                             timeout=30)
        known = admin.post("/keys", json={"name": "known"}).json()
        unseen = admin.post("/keys", json={"name": "unseen"}).json()
        chat(gw, known["key"])

        pg.stop()
        time.sleep(0.5)  # the known key's entry is now past its TTL
        chat(gw, known["key"])  # served from what the worker knew: nobody can change it meanwhile
        chat(gw, MASTER_KEY)
        with pytest.raises(openai.InternalServerError) as raised:
            chat(gw, unseen["key"])
        assert raised.value.status_code == 503
        assert raised.value.code == "store_unavailable"
        refused = admin.post("/keys", json={"name": "while-down"})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "store_unavailable"
        assert admin.get("/keys").status_code == 503

        pg.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                chat(gw, unseen["key"])
                break
            except openai.InternalServerError:
                assert time.monotonic() < deadline, "the gateway did not recover after the database returned"
                time.sleep(0.2)
        assert admin.post("/keys", json={"name": "after"}).status_code == 201
        admin.close()
    finally:
        if gw is not None:
            gw.close()
        pg.close()
