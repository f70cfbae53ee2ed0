"""The admin users' store, on the embedded SQLite and on PostgreSQL, through the same SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.config.settings import Settings
from gateway.identity.store import open_store
from gateway.identity.store.base import Conflict
from gateway.identity.store.users import UserStore
from tests.dbs import create_pg_database, drop_pg_database


@pytest.fixture(scope="module")
def users_pg() -> Iterator[str]:
    dsn = create_pg_database()
    yield dsn
    drop_pg_database(dsn)


@pytest.fixture(params=["sqlite", "postgres"])
async def users(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UserStore]:
    if request.param == "postgres":
        dsn = request.getfixturevalue("users_pg")
        settings = Settings(database_url=dsn)
    else:
        settings = Settings(data_dir=str(tmp_path))
    store = await open_store(settings)  # migrates, 0003 included
    users = UserStore.of(store)
    for user in await users.list():
        await users.delete(user.username)
    yield users
    await store.close()


async def test_create_read_update_delete(users: UserStore) -> None:
    made = await users.create("ada", "scrypt$hash-1", "admin")
    assert (made.username, made.password_hash, made.role) == ("ada", "scrypt$hash-1", "admin")
    assert await users.get("ada") == made
    assert await users.get("nobody") is None
    with pytest.raises(Conflict) as taken:
        await users.create("ada", "scrypt$hash-2", "viewer")
    assert taken.value.field == "username"
    await users.create("vic", "scrypt$hash-3", "viewer")
    assert [u.username for u in await users.list()] == ["ada", "vic"]

    new_password = await users.update("ada", password_hash="scrypt$hash-4")
    assert new_password is not None and new_password.password_hash == "scrypt$hash-4"
    assert new_password.role == "admin" and new_password.updated_at >= made.updated_at
    demoted = await users.update("ada", role="viewer")
    assert demoted is not None and demoted.role == "viewer" and demoted.password_hash == "scrypt$hash-4"
    assert await users.update("nobody", role="admin") is None

    assert await users.delete("vic") and not await users.delete("vic")
    assert [u.username for u in await users.list()] == ["ada"]


@pytest.mark.parametrize(("username", "role"), [("", "admin"), ("has space", "admin"), ("x" * 65, "admin"),
                                                ("ok", "root")])
async def test_bad_names_and_roles_are_refused(users: UserStore, username: str, role: str) -> None:
    with pytest.raises(ValueError):
        await users.create(username, "scrypt$h", role)  # type: ignore[arg-type]
