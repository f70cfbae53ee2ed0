"""The store of teams, virtual keys and the audit log: what it holds and what it can do.

Two implementations share one SQL core (`sql.py`): PostgreSQL (`postgres.py`) and the
embedded SQLite default (`sqlite.py`). Every change writes its audit row in the same
transaction, so there is no change without a record of who made it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from gateway.core.errors import ServiceUnavailable
from gateway.core.types import NO_LIMITS, Limits, Spend

# The fields an update may change; anything else is a programming error.
TEAM_FIELDS = frozenset({"name", "rpm", "tpm", "max_parallel", "budget_usd", "budget_period", "metadata"})
KEY_FIELDS = frozenset(
    {"name", "team_id", "is_admin", "allowed_models", "rpm", "tpm", "max_parallel", "budget_usd",
     "budget_period", "expires_at", "metadata"}
)


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    limits: Limits
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A virtual key as the store knows it: never the key itself, only its display prefix."""

    id: str
    name: str
    team_id: str | None
    prefix: str
    is_admin: bool
    allowed_models: tuple[str, ...] | None
    limits: Limits
    expires_at: datetime | None
    revoked_at: datetime | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class KeyMatch:
    """What authentication needs about a presented key: the key, its team, and until when this
    particular secret is valid (None: until the key itself expires; set once it was rotated away)."""

    key: ApiKey
    team: Team | None
    secret_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewTeam:
    name: str
    limits: Limits = NO_LIMITS
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewKey:
    name: str = ""
    team_id: str | None = None
    is_admin: bool = False
    allowed_models: tuple[str, ...] | None = None
    limits: Limits = NO_LIMITS
    expires_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class StoreError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Conflict(StoreError):
    """The change contradicts what is stored: a duplicate name, a team that still has keys."""


class UnknownReference(StoreError):
    """The change names something that does not exist, e.g. a key's team."""


class StoreUnavailable(ServiceUnavailable):
    """The database cannot be reached or timed out: a 503, never a 500."""

    code = "store_unavailable"


class Store(Protocol):
    async def close(self) -> None: ...

    async def create_team(self, team: NewTeam, actor: str) -> Team: ...
    async def get_team(self, team_id: str) -> Team | None: ...
    async def list_teams(self, *, after: str | None = None, limit: int = 100) -> list[Team]: ...
    async def update_team(self, team_id: str, changes: Mapping[str, Any], actor: str) -> Team | None: ...
    async def delete_team(self, team_id: str, actor: str) -> bool: ...

    async def create_key(self, key: NewKey, key_hash: str, prefix: str, actor: str) -> ApiKey: ...
    async def get_key(self, key_id: str) -> ApiKey | None: ...
    async def list_keys(
        self, *, team_id: str | None = None, include_revoked: bool = True, after: str | None = None, limit: int = 100
    ) -> list[ApiKey]: ...
    async def update_key(self, key_id: str, changes: Mapping[str, Any], actor: str) -> ApiKey | None: ...
    async def rotate_key(
        self, key_id: str, key_hash: str, prefix: str, grace_until: datetime, actor: str
    ) -> ApiKey | None: ...
    async def revoke_key(self, key_id: str, actor: str) -> ApiKey | None: ...
    async def find_key(self, key_hash: str) -> KeyMatch | None: ...

    async def list_audit(
        self, *, target_type: str | None = None, target_id: str | None = None, before: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]: ...
    async def last_change(self) -> int:
        """The id of the newest audit row (0 if none): it moves whenever anything changed."""
        ...


class SpendReader(Protocol):
    """Implemented by the limiter, which owns the spend counters. The admin API only reads."""

    async def current(self, scope: Literal["key", "team"], id: str, limits: Limits) -> Spend | None: ...


class NoSpendReader:
    """Until a limiter provides the counters, spend is unknown (null), never a made-up zero."""

    async def current(self, scope: Literal["key", "team"], id: str, limits: Limits) -> Spend | None:
        return None
