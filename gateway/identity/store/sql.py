"""The store's SQL, shared by PostgreSQL and SQLite.

Statements use `$n` placeholders and plain Python values (str, int, bool, None, datetime,
lists, dicts); each `Database` adapter converts both ways, so this module never knows which
database it talks to. Money is stored as integer micro-dollars.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from gateway.core.types import BudgetPeriod, Limits
from gateway.identity.keys import new_id
from gateway.identity.store.base import (
    KEY_FIELDS,
    TEAM_FIELDS,
    ApiKey,
    AuditEntry,
    Conflict,
    KeyMatch,
    NewKey,
    NewTeam,
    Team,
    UnknownReference,
)
from gateway.identity.store.plain import key_record, plain, team_record

MICRO = Decimal(1_000_000)


class Tx(Protocol):
    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]: ...
    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None: ...
    async def execute(self, sql: str, *args: Any) -> None: ...


class Database(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Tx]: ...
    def reader(self) -> AbstractAsyncContextManager[Tx]: ...
    async def close(self) -> None: ...


_LIMIT_COLUMNS = ("rpm", "tpm", "max_parallel", "budget_micro_usd", "budget_period")
TEAM_COLUMNS = ("id", "name", *_LIMIT_COLUMNS, "metadata", "created_at", "updated_at", "created_by")
KEY_COLUMNS = (
    "id", "team_id", "name", "prefix", "is_admin", "allowed_models", *_LIMIT_COLUMNS, "expires_at", "revoked_at",
    "metadata", "created_at", "updated_at", "created_by",
)
_TEAMS = ", ".join(TEAM_COLUMNS)
_KEYS = ", ".join(KEY_COLUMNS)
_MATCH = ", ".join(
    ["s.expires_at AS secret_expires_at"] + [f"k.{c}" for c in KEY_COLUMNS] + [f"t.{c} AS t_{c}" for c in TEAM_COLUMNS]
)


def to_micro(usd: Decimal | None) -> int | None:
    if usd is None:
        return None
    micro = usd * MICRO
    if micro != micro.to_integral_value():
        raise ValueError(f"{usd} USD is finer than a micro-dollar")
    return int(micro)


def _limits(row: Mapping[str, Any], prefix: str = "") -> Limits:
    micro = row[prefix + "budget_micro_usd"]
    period = row[prefix + "budget_period"]
    return Limits(
        rpm=row[prefix + "rpm"],
        tpm=row[prefix + "tpm"],
        max_parallel=row[prefix + "max_parallel"],
        budget_usd=None if micro is None else Decimal(micro) / MICRO,
        budget_period=None if period is None else BudgetPeriod(period),
    )


def _limit_values(limits: Limits) -> tuple[Any, ...]:
    period = None if limits.budget_period is None else str(limits.budget_period)
    return limits.rpm, limits.tpm, limits.max_parallel, to_micro(limits.budget_usd), period


def _team(row: Mapping[str, Any], prefix: str = "") -> Team:
    return Team(
        id=row[prefix + "id"], name=row[prefix + "name"], limits=_limits(row, prefix),
        metadata=row[prefix + "metadata"], created_at=row[prefix + "created_at"],
        updated_at=row[prefix + "updated_at"], created_by=row[prefix + "created_by"],
    )


def _key(row: Mapping[str, Any]) -> ApiKey:
    models = row["allowed_models"]
    return ApiKey(
        id=row["id"], name=row["name"], team_id=row["team_id"], prefix=row["prefix"], is_admin=row["is_admin"],
        allowed_models=None if models is None else tuple(models), limits=_limits(row),
        expires_at=row["expires_at"], revoked_at=row["revoked_at"], metadata=row["metadata"],
        created_at=row["created_at"], updated_at=row["updated_at"], created_by=row["created_by"],
    )


def _column_value(name: str, value: Any) -> tuple[str, Any]:
    """An update field as its column and stored value."""
    if name == "budget_usd":
        return "budget_micro_usd", to_micro(value)
    if name == "budget_period":
        return name, None if value is None else str(value)
    if name == "allowed_models":
        return name, None if value is None else list(value)
    return name, value


def _diff(before: dict[str, Any], after: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    return {f: {"from": before[f], "to": after[f]} for f in fields if before[f] != after[f]}


async def _audit(
    tx: Tx, at: datetime, actor: str, action: str, target: tuple[str, str], details: dict[str, Any]
) -> None:
    await tx.execute(
        "INSERT INTO audit_log (at, actor, action, target_type, target_id, details) VALUES ($1, $2, $3, $4, $5, $6)",
        at, actor, action, target[0], target[1], plain(details),
    )


class SqlStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def close(self) -> None:
        await self.db.close()

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    # Teams

    async def create_team(self, team: NewTeam, actor: str) -> Team:
        now = self._now()
        async with self.db.transaction() as tx:
            await self._name_free(tx, team.name)
            row = await tx.fetchrow(
                f"INSERT INTO teams ({_TEAMS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
                f"RETURNING {_TEAMS}",
                new_id("team"), team.name, *_limit_values(team.limits), team.metadata, now, now, actor,
            )
            assert row is not None
            created = _team(row)
            await _audit(tx, now, actor, "team.create", ("team", created.id), {"team": team_record(created)})
        return created

    async def _name_free(self, tx: Tx, name: str, team_id: str = "") -> None:
        if await tx.fetchrow("SELECT id FROM teams WHERE name = $1 AND id <> $2", name, team_id):
            raise Conflict(f"A team named {name!r} already exists.", "name")

    async def get_team(self, team_id: str) -> Team | None:
        async with self.db.reader() as tx:
            row = await tx.fetchrow(f"SELECT {_TEAMS} FROM teams WHERE id = $1", team_id)
        return None if row is None else _team(row)

    async def list_teams(self, *, after: str | None = None, limit: int = 100) -> list[Team]:
        async with self.db.reader() as tx:
            rows = await tx.fetch(f"SELECT {_TEAMS} FROM teams WHERE id > $1 ORDER BY id LIMIT $2", after or "", limit)
        return [_team(r) for r in rows]

    async def update_team(self, team_id: str, changes: Mapping[str, Any], actor: str) -> Team | None:
        unknown = set(changes) - TEAM_FIELDS
        assert not unknown, f"not team fields: {unknown}"
        now = self._now()
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(f"SELECT {_TEAMS} FROM teams WHERE id = $1 FOR UPDATE", team_id)
            if row is None:
                return None
            if "name" in changes:
                await self._name_free(tx, changes["name"], team_id)
            before = team_record(_team(row))
            updated = await self._update(tx, "teams", _TEAMS, team_id, changes, now)
            after = team_record(_team(updated))
            diff = _diff(before, after, changes)
            if diff:
                await _audit(tx, now, actor, "team.update", ("team", team_id), {"changes": diff})
        return _team(updated)

    async def _update(
        self, tx: Tx, table: str, columns: str, row_id: str, changes: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        assignments = dict(_column_value(name, value) for name, value in changes.items())
        assignments["updated_at"] = now
        sets = ", ".join(f"{column} = ${i}" for i, column in enumerate(assignments, start=2))
        row = await tx.fetchrow(
            f"UPDATE {table} SET {sets} WHERE id = $1 RETURNING {columns}", row_id, *assignments.values()
        )
        assert row is not None
        return row

    async def delete_team(self, team_id: str, actor: str) -> bool:
        now = self._now()
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(f"SELECT {_TEAMS} FROM teams WHERE id = $1 FOR UPDATE", team_id)
            if row is None:
                return False
            active = await tx.fetchrow(
                "SELECT count(*) AS n FROM api_keys WHERE team_id = $1 AND revoked_at IS NULL", team_id
            )
            if active and active["n"]:
                raise Conflict(
                    f"Team {team_id} still has {active['n']} key(s) that are not revoked; revoke them first."
                )
            await tx.execute("DELETE FROM teams WHERE id = $1", team_id)
            await _audit(tx, now, actor, "team.delete", ("team", team_id), {"team": team_record(_team(row))})
        return True

    # Keys

    async def create_key(self, key: NewKey, key_hash: str, prefix: str, actor: str) -> ApiKey:
        now = self._now()
        key_id = new_id("key")
        models = None if key.allowed_models is None else list(key.allowed_models)
        async with self.db.transaction() as tx:
            await self._team_exists(tx, key.team_id)
            row = await tx.fetchrow(
                f"INSERT INTO api_keys ({_KEYS}) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) "
                f"RETURNING {_KEYS}",
                key_id, key.team_id, key.name, prefix, key.is_admin, models, *_limit_values(key.limits),
                key.expires_at, None, key.metadata, now, now, actor,
            )
            assert row is not None
            await tx.execute(
                "INSERT INTO api_key_secrets (key_hash, key_id, prefix, created_at, expires_at) "
                "VALUES ($1, $2, $3, $4, $5)",
                key_hash, key_id, prefix, now, None,
            )
            created = _key(row)
            await _audit(tx, now, actor, "key.create", ("key", key_id), {"key": key_record(created)})
        return created

    async def _team_exists(self, tx: Tx, team_id: str | None) -> None:
        if team_id is not None and await tx.fetchrow("SELECT id FROM teams WHERE id = $1", team_id) is None:
            raise UnknownReference(f"No team with id {team_id!r}.", "team_id")

    async def get_key(self, key_id: str) -> ApiKey | None:
        async with self.db.reader() as tx:
            row = await tx.fetchrow(f"SELECT {_KEYS} FROM api_keys WHERE id = $1", key_id)
        return None if row is None else _key(row)

    async def list_keys(
        self, *, team_id: str | None = None, include_revoked: bool = True, after: str | None = None, limit: int = 100
    ) -> list[ApiKey]:
        where: list[str] = ["id > $1"]
        args: list[Any] = [after or ""]
        if team_id is not None:
            args.append(team_id)
            where.append(f"team_id = ${len(args)}")
        if not include_revoked:
            where.append("revoked_at IS NULL")
        args.append(limit)
        sql = f"SELECT {_KEYS} FROM api_keys WHERE {' AND '.join(where)} ORDER BY id LIMIT ${len(args)}"
        async with self.db.reader() as tx:
            rows = await tx.fetch(sql, *args)
        return [_key(r) for r in rows]

    async def update_key(self, key_id: str, changes: Mapping[str, Any], actor: str) -> ApiKey | None:
        unknown = set(changes) - KEY_FIELDS
        assert not unknown, f"not key fields: {unknown}"
        now = self._now()
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(f"SELECT {_KEYS} FROM api_keys WHERE id = $1 FOR UPDATE", key_id)
            if row is None:
                return None
            if changes.get("team_id") is not None:
                await self._team_exists(tx, changes["team_id"])
            before = key_record(_key(row))
            updated = _key(await self._update(tx, "api_keys", _KEYS, key_id, changes, now))
            diff = _diff(before, key_record(updated), changes)
            if diff:
                await _audit(tx, now, actor, "key.update", ("key", key_id), {"changes": diff})
        return updated

    async def rotate_key(
        self, key_id: str, key_hash: str, prefix: str, grace_until: datetime, actor: str
    ) -> ApiKey | None:
        now = self._now()
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(f"SELECT {_KEYS} FROM api_keys WHERE id = $1 FOR UPDATE", key_id)
            if row is None:
                return None
            old = _key(row)
            if old.revoked_at is not None:
                raise Conflict(f"Key {key_id} is revoked; a revoked key cannot be rotated.")
            # Secrets already rotated away keep their earlier end; none is extended.
            await tx.execute(
                "UPDATE api_key_secrets SET expires_at = $2 "
                "WHERE key_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
                key_id, grace_until,
            )
            await tx.execute("DELETE FROM api_key_secrets WHERE key_id = $1 AND expires_at < $2", key_id, now)
            await tx.execute(
                "INSERT INTO api_key_secrets (key_hash, key_id, prefix, created_at, expires_at) "
                "VALUES ($1, $2, $3, $4, $5)",
                key_hash, key_id, prefix, now, None,
            )
            updated = _key(await self._update(tx, "api_keys", _KEYS, key_id, {"prefix": prefix}, now))
            details = {"old_prefix": old.prefix, "new_prefix": prefix, "old_valid_until": grace_until}
            await _audit(tx, now, actor, "key.rotate", ("key", key_id), details)
        return updated

    async def revoke_key(self, key_id: str, actor: str) -> ApiKey | None:
        now = self._now()
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(f"SELECT {_KEYS} FROM api_keys WHERE id = $1 FOR UPDATE", key_id)
            if row is None:
                return None
            if row["revoked_at"] is not None:
                return _key(row)  # revoking twice changes nothing and records nothing
            revoked = _key(await self._update(tx, "api_keys", _KEYS, key_id, {"revoked_at": now}, now))
            await _audit(tx, now, actor, "key.revoke", ("key", key_id), {"prefix": revoked.prefix})
        return revoked

    async def find_key(self, key_hash: str) -> KeyMatch | None:
        async with self.db.reader() as tx:
            row = await tx.fetchrow(
                f"SELECT {_MATCH} FROM api_key_secrets s JOIN api_keys k ON k.id = s.key_id "
                "LEFT JOIN teams t ON t.id = k.team_id WHERE s.key_hash = $1",
                key_hash,
            )
        if row is None:
            return None
        team = None if row["t_id"] is None else _team(row, "t_")
        return KeyMatch(key=_key(row), team=team, secret_expires_at=row["secret_expires_at"])

    # Audit log

    async def list_audit(
        self, *, target_type: str | None = None, target_id: str | None = None, before: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("target_type", target_type), ("target_id", target_id), ("id", before)):
            if value is not None:
                args.append(value)
                where.append(f"{column} {'<' if column == 'id' else '='} ${len(args)}")
        args.append(limit)
        condition = f"WHERE {' AND '.join(where)}" if where else ""
        sql = (
            "SELECT id, at, actor, action, target_type, target_id, details FROM audit_log "
            f"{condition} ORDER BY id DESC LIMIT ${len(args)}"
        )
        async with self.db.reader() as tx:
            rows = await tx.fetch(sql, *args)
        return [AuditEntry(**r) for r in rows]

    async def last_change(self) -> int:
        async with self.db.reader() as tx:
            row = await tx.fetchrow("SELECT max(id) AS id FROM audit_log")
        return int(row["id"] or 0) if row else 0
