"""The admin UI's users: a name, a role and a slow hash of the password (never the password).

Kept on the same database as the keys (`SqlStore.db`), through the same `Database` adapters, so
both PostgreSQL and the embedded SQLite hold them (migration 0003).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from gateway.identity.store.base import Conflict, Store
from gateway.identity.store.sql import Database, SqlStore

Role = Literal["admin", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "viewer")
USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_COLUMNS = "username, password_hash, role, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class AdminUser:
    username: str
    password_hash: str
    role: Role
    created_at: datetime
    updated_at: datetime


def _user(row: dict[str, Any]) -> AdminUser:
    return AdminUser(**row)


class UserStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def of(cls, store: Store) -> UserStore:
        """The users kept beside a key store's teams and keys."""
        if not isinstance(store, SqlStore):
            raise TypeError(f"admin users need a SQL store, not {type(store).__name__}")
        return cls(store.db)

    async def get(self, username: str) -> AdminUser | None:
        async with self.db.reader() as tx:
            row = await tx.fetchrow(f"SELECT {_COLUMNS} FROM admin_users WHERE username = $1", username)
        return None if row is None else _user(row)

    async def list(self) -> list[AdminUser]:
        async with self.db.reader() as tx:
            rows = await tx.fetch(f"SELECT {_COLUMNS} FROM admin_users ORDER BY username")
        return [_user(r) for r in rows]

    async def create(self, username: str, password_hash: str, role: Role) -> AdminUser:
        _check(username, role)
        now = datetime.now(UTC)
        async with self.db.transaction() as tx:
            if await tx.fetchrow("SELECT username FROM admin_users WHERE username = $1", username):
                raise Conflict(f"An admin user named {username!r} already exists.", "username")
            row = await tx.fetchrow(
                f"INSERT INTO admin_users ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}",
                username, password_hash, role, now, now,
            )
        assert row is not None
        return _user(row)

    async def update(self, username: str, *, password_hash: str | None = None, role: Role | None = None
                     ) -> AdminUser | None:
        if role is not None:
            _check(username, role)
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                "UPDATE admin_users SET password_hash = coalesce($2, password_hash), role = coalesce($3, role), "
                f"updated_at = $4 WHERE username = $1 RETURNING {_COLUMNS}",
                username, password_hash, role, datetime.now(UTC),
            )
        return None if row is None else _user(row)

    async def delete(self, username: str) -> bool:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow("DELETE FROM admin_users WHERE username = $1 RETURNING username", username)
        return row is not None


def _check(username: str, role: str) -> None:
    if not USERNAME.match(username):
        raise ValueError("username: 1 to 64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise ValueError(f"role: one of {', '.join(ROLES)}")
