"""Virtual keys through the official openai SDK, and revocation reaching every gateway process.

Each module-level gateway runs on one of the two stores; the two-process tests start their
own pair of gateways sharing one store (Postgres + Redis, or one SQLite file without Redis).
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from gateway.core.types import Limits
from gateway.identity.keycache import KeyCache
from gateway.identity.keys import NewSecret
from gateway.identity.keys import new_key as make_key
from gateway.identity.store.base import NewKey, NewTeam
from gateway.identity.store.sql import SqlStore
from gateway.identity.store.sqlite import SqliteDatabase
from tests.dbs import REDIS_URL, create_pg_database, drop_pg_database, redis_prefix
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment, free_port, stop

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
# Long enough that only an announced change, never a cache expiry, can explain a refusal in time.
LONG_CACHE_S = 600


def models(upstream: FakeUpstream) -> list[dict[str, Any]]:
    return [{"name": "gpt-test", "deployments": [deployment(upstream)]},
            {"name": "other", "deployments": [deployment(upstream)]}]


def admin_client(gw: Gateway) -> httpx.Client:
    return httpx.Client(base_url=gw.base + "/admin/api", headers={"authorization": f"Bearer {MASTER_KEY}"},
                        timeout=10)


def sdk(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)


def chat(gw: Gateway, key: str, model: str = "gpt-test") -> str:
    completion = sdk(gw, key).chat.completions.create(model=model, messages=MESSAGES)
    return completion.choices[0].message.content or ""


def refused_within(seconds: float, attempt: Callable[[], object]) -> float:
    """Poll until `attempt` raises AuthenticationError; fail if that takes longer than `seconds`."""
    start = time.monotonic()
    deadline = start + seconds
    while True:
        try:
            attempt()
        except openai.AuthenticationError:
            return time.monotonic() - start
        if time.monotonic() > deadline:
            pytest.fail(f"still accepted {seconds}s after the change")
        time.sleep(0.02)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[Gateway]:
    settings: dict[str, Any] = {"auth_cache_ttl_s": LONG_CACHE_S}
    dsn = None
    if request.param == "postgres":
        dsn = create_pg_database()
        settings |= {"database_url": dsn, "redis_url": REDIS_URL, "redis_prefix": redis_prefix()}
    gateway = Gateway(tmp_path_factory.mktemp(f"keys-{request.param}"), models(upstream), settings=settings)
    yield gateway
    gateway.close()
    if dsn is not None:
        drop_pg_database(dsn)


@pytest.fixture
def admin(gw: Gateway) -> Iterator[httpx.Client]:
    with admin_client(gw) as client:
        yield client


def new_key(admin: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = admin.post("/keys", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_created_key_works(gw: Gateway, admin: httpx.Client) -> None:
    key = new_key(admin, name="works")
    assert chat(gw, key["key"])
    streamed = sdk(gw, key["key"]).chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    chunks = [c for c in streamed if isinstance(c, ChatCompletionChunk) and c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in chunks)
    assert {m.id for m in sdk(gw, key["key"]).models.list()} == {"gpt-test", "other"}


def test_the_master_key_still_works(gw: Gateway) -> None:
    assert chat(gw, MASTER_KEY)


@pytest.mark.parametrize("bad", ["sk-gw-" + "x" * 43, "sk-gw-", "sk-not-ours-at-all", "x" * 1000])
def test_unknown_keys_are_refused(gw: Gateway, bad: str) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        chat(gw, bad)
    assert raised.value.code == "invalid_api_key"
    assert bad not in raised.value.message


def test_a_revoked_key_is_refused_at_once(gw: Gateway, admin: httpx.Client) -> None:
    key = new_key(admin)
    assert chat(gw, key["key"])
    admin.post(f"/keys/{key['id']}/revoke")
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        chat(gw, key["key"])


def test_an_expired_key_is_refused(gw: Gateway, admin: httpx.Client) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    key = new_key(admin, expires_at=soon)
    assert chat(gw, key["key"])  # cached now, with its expiry: the cache must still refuse it later
    refused_within(10, lambda: chat(gw, key["key"]))
    with pytest.raises(openai.AuthenticationError, match="expired"):
        chat(gw, key["key"])


def test_expiring_a_key_by_update_takes_effect_at_once(gw: Gateway, admin: httpx.Client) -> None:
    key = new_key(admin)
    assert chat(gw, key["key"])
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert admin.patch(f"/keys/{key['id']}", json={"expires_at": past}).status_code == 200
    with pytest.raises(openai.AuthenticationError, match="expired"):
        chat(gw, key["key"])


def test_rotation_keeps_the_old_key_for_the_grace_period(gw: Gateway, admin: httpx.Client) -> None:
    key = new_key(admin)
    old = key["key"]
    assert chat(gw, old)
    rotated = admin.post(f"/keys/{key['id']}/rotate", json={"grace_seconds": 2}).json()
    new = rotated["key"]
    assert chat(gw, new) and chat(gw, old)  # both work during the grace period
    refused_within(15, lambda: chat(gw, old))
    with pytest.raises(openai.AuthenticationError, match="rotated"):
        chat(gw, old)
    assert chat(gw, new)


def test_rotation_without_grace_retires_the_old_key_at_once(gw: Gateway, admin: httpx.Client) -> None:
    key = new_key(admin)
    assert chat(gw, key["key"])
    rotated = admin.post(f"/keys/{key['id']}/rotate", json={"grace_seconds": 0}).json()
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key["key"])
    assert chat(gw, rotated["key"])


def test_a_model_outside_the_allowed_ones_is_refused(gw: Gateway, admin: httpx.Client) -> None:
    key = new_key(admin, allowed_models=["gpt-test"])
    assert chat(gw, key["key"], "gpt-test")
    with pytest.raises(openai.PermissionDeniedError) as raised:
        chat(gw, key["key"], "other")
    assert raised.value.status_code == 403
    assert raised.value.code == "model_not_found"
    assert raised.value.param == "model"  # type: ignore[attr-defined]
    client = sdk(gw, key["key"])
    assert [m.id for m in client.models.list()] == ["gpt-test"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("other")
    with pytest.raises(openai.NotFoundError):
        chat(gw, key["key"], "no-such-model")  # a model nobody serves stays a 404

    # Widening the list takes effect at once.
    admin.patch(f"/keys/{key['id']}", json={"allowed_models": ["gpt-test", "other"]})
    assert chat(gw, key["key"], "other")


def test_a_deleted_teams_keys_were_revoked_first(gw: Gateway, admin: httpx.Client) -> None:
    team = admin.post("/teams", json={"name": f"t-{time.monotonic_ns()}"}).json()
    key = new_key(admin, team_id=team["id"])
    assert chat(gw, key["key"])
    assert admin.delete(f"/teams/{team['id']}").status_code == 409
    admin.post(f"/keys/{key['id']}/revoke")
    assert admin.delete(f"/teams/{team['id']}").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key["key"])


# The pieces underneath, on a real SQLite store: key making and the per-worker cache.


def test_keys_are_long_random_and_stored_only_as_a_hash() -> None:
    made = [make_key() for _ in range(500)]
    assert len({m.key for m in made}) == 500
    for m in made[:20]:
        assert m.key.startswith("sk-gw-") and len(m.key) == 49 and m.key[6:].isalnum()
        assert m.hash == hashlib.sha256(m.key.encode()).hexdigest() and m.key not in m.hash
        assert m.key.startswith(m.prefix) and len(m.prefix) == 12
    # 43 base62 characters: every position takes many values (no fixed padding, no short alphabet).
    assert all(len({m.key[6 + i] for m in made}) > 40 for i in range(43))


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = SqlStore(await SqliteDatabase.open(tmp_path / "keys.db"))
    yield store
    await store.close()


async def stored_key(store: SqlStore, **fields: Any) -> NewSecret:
    secret = make_key()
    await store.create_key(NewKey(**fields), secret.hash, secret.prefix, "master")
    return secret


async def test_cache_reads_the_store_once_per_key(sqlite_store: SqlStore) -> None:
    cache = KeyCache(sqlite_store, ttl_s=60)
    secret = await stored_key(sqlite_store, name="c")
    first = await cache.get(secret.hash, secret.prefix)
    assert first.principal is not None and first.principal.key_prefix == secret.prefix
    assert await cache.get(secret.hash, secret.prefix) == first
    assert cache.reads == 1
    # Unknown keys are remembered too, so retrying a bad key does not reach the database.
    unknown = make_key()
    assert (await cache.get(unknown.hash, unknown.prefix)).principal is None
    await cache.get(unknown.hash, unknown.prefix)
    assert cache.reads == 2


async def test_cache_loads_a_key_once_for_many_concurrent_requests(sqlite_store: SqlStore) -> None:
    cache = KeyCache(sqlite_store, ttl_s=60)
    secret = await stored_key(sqlite_store)
    states = await asyncio.gather(*(cache.get(secret.hash, secret.prefix) for _ in range(50)))
    assert cache.reads == 1
    assert all(s == states[0] and s.principal is not None for s in states)


async def test_cache_forgets_on_invalidation_and_after_its_ttl(sqlite_store: SqlStore) -> None:
    now = [1000.0]
    trusted = [True]
    cache = KeyCache(sqlite_store, ttl_s=30, clock=lambda: now[0], trusted=lambda: trusted[0])
    team = await sqlite_store.create_team(NewTeam("cache-team", Limits(rpm=7, budget_usd=Decimal("2.5"))), "master")
    secret = await stored_key(sqlite_store, team_id=team.id, limits=Limits(tpm=300), allowed_models=("m",))
    state = await cache.get(secret.hash, secret.prefix)
    assert state.principal is not None
    # What the limiter and the model check read: the key's caps, its team's, its models.
    assert state.principal.key_limits == Limits(tpm=300)
    assert state.principal.team_limits == Limits(rpm=7, budget_usd=Decimal("2.5"))
    assert (state.principal.team_id, state.principal.allowed_models) == (team.id, frozenset({"m"}))
    key_id = state.principal.key_id
    cache.invalidate("key", key_id)
    await cache.get(secret.hash, secret.prefix)
    cache.invalidate("team", team.id)
    await cache.get(secret.hash, secret.prefix)
    cache.invalidate("key", "key_someone_else")
    await cache.get(secret.hash, secret.prefix)
    assert cache.reads == 3
    now[0] += 29
    await cache.get(secret.hash, secret.prefix)
    assert cache.reads == 3
    now[0] += 2
    await cache.get(secret.hash, secret.prefix)
    assert cache.reads == 4
    # While change announcements are not arriving, an entry is trusted for one second only.
    trusted[0] = False
    now[0] += 1.5
    await cache.get(secret.hash, secret.prefix)
    assert cache.reads == 5


async def test_cache_is_bounded(sqlite_store: SqlStore) -> None:
    cache = KeyCache(sqlite_store, ttl_s=60, max_entries=10)
    for _ in range(25):
        unknown = make_key()
        await cache.get(unknown.hash, unknown.prefix)
    assert len(cache) == 10


# Two gateway processes sharing one store.


def two_gateways(tmp: Path, upstream: FakeUpstream, settings: dict[str, Any]) -> tuple[Gateway, Gateway]:
    first = Gateway(tmp, models(upstream), settings=settings)
    try:
        second = Gateway(tmp, models(upstream), settings=settings)
    except BaseException:
        first.close()
        raise
    return first, second


def revoke_reaches_the_other_process(a: Gateway, b: Gateway) -> None:
    with admin_client(a) as admin:
        key = new_key(admin)
        # Both processes have now read the key and cache it for LONG_CACHE_S.
        assert chat(a, key["key"]) and chat(b, key["key"])
        assert chat(b, key["key"])
        narrowed = new_key(admin, allowed_models=["gpt-test", "other"])
        assert chat(b, narrowed["key"], "other")

        admin.post(f"/keys/{key['id']}/revoke").raise_for_status()
        refused_within(1.0, lambda: chat(b, key["key"]))

        # An update reaches it too: the allowed models shrink on the other process.
        admin.patch(f"/keys/{narrowed['id']}", json={"allowed_models": ["gpt-test"]}).raise_for_status()
        start = time.monotonic()
        while True:
            try:
                chat(b, narrowed["key"], "other")
            except openai.PermissionDeniedError:
                break
            assert time.monotonic() - start < 1.0, "the update did not reach the other process within 1 s"
            time.sleep(0.02)


def test_revocation_reaches_another_process_through_redis(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    dsn = create_pg_database()
    settings = {"database_url": dsn, "redis_url": REDIS_URL, "redis_prefix": redis_prefix(),
                "auth_cache_ttl_s": LONG_CACHE_S}
    try:
        a, b = two_gateways(tmp_path, upstream, settings)
        try:
            revoke_reaches_the_other_process(a, b)
        finally:
            a.close()
            b.close()
    finally:
        drop_pg_database(dsn)


def test_revocation_reaches_another_process_on_the_embedded_default(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # No Redis, no database: both processes share the SQLite file and poll it for changes.
    settings = {"data_dir": str(tmp_path / "shared"), "auth_cache_ttl_s": LONG_CACHE_S}
    a, b = two_gateways(tmp_path, upstream, settings)
    try:
        revoke_reaches_the_other_process(a, b)
    finally:
        a.close()
        b.close()


def start_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(port=port, socket_timeout=1).ping()
            return proc
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop(proc)
                raise
            time.sleep(0.05)


def key_changes(gw: Gateway) -> str:
    state: str = httpx.get(gw.base + "/readyz").json()["info"]["key_changes"]
    return state


def test_revocation_still_lands_while_redis_is_down(upstream: FakeUpstream, tmp_path: Path) -> None:
    """A private Redis, stopped and restarted under two gateways: no 500s, and revocation stays bounded."""
    port = free_port()
    server = start_redis(port, tmp_path)
    dsn = create_pg_database()
    settings = {"database_url": dsn, "redis_url": f"redis://127.0.0.1:{port}/0", "redis_prefix": redis_prefix(),
                "auth_cache_ttl_s": LONG_CACHE_S, "limits_failure_mode": "open"}
    try:
        a, b = two_gateways(tmp_path, upstream, settings)
        try:
            with admin_client(a) as admin:
                key = new_key(admin)
                assert chat(a, key["key"]) and chat(b, key["key"])
                stop(server)
                assert chat(b, key["key"])  # Redis down: authentication goes on (cache, then the database)
                admin.post(f"/keys/{key['id']}/revoke").raise_for_status()  # the announcement is lost
                # With the subscription down, entries live one second: refused soon all the same.
                refused_within(3.0, lambda: chat(b, key["key"]))

                assert key_changes(b) == "degraded"

                server = start_redis(port, tmp_path)
                # The subscription comes back within its reconnect back-off...
                deadline = time.monotonic() + 15
                while key_changes(b) != "live" or key_changes(a) != "live":
                    assert time.monotonic() < deadline, "the key-change subscription did not come back"
                    time.sleep(0.1)
                # ...and with it the one-second bound under a long cache.
                later = new_key(admin)
                assert chat(b, later["key"])
                admin.post(f"/keys/{later['id']}/revoke").raise_for_status()
                refused_within(1.0, lambda: chat(b, later["key"]))
        finally:
            a.close()
            b.close()
    finally:
        stop(server)
        drop_pg_database(dsn)
