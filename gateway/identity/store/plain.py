"""Teams and keys as plain JSON values: for admin responses and audit rows alike.

Money is a decimal string ("12.50"), never a float; times are ISO-8601 in UTC. A key's record
carries its display prefix only: the key and its hash never leave the store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from gateway.core.types import Limits
from gateway.identity.store.base import ApiKey, Team


def plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def limits_record(limits: Limits) -> dict[str, Any]:
    return {
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "max_parallel": limits.max_parallel,
        "budget_usd": plain(limits.budget_usd),
        "budget_period": plain(limits.budget_period),
    }


def team_record(team: Team) -> dict[str, Any]:
    return {
        "id": team.id,
        "name": team.name,
        **limits_record(team.limits),
        "metadata": team.metadata,
        "created_at": plain(team.created_at),
        "updated_at": plain(team.updated_at),
        "created_by": team.created_by,
    }


def key_record(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "team_id": key.team_id,
        "prefix": key.prefix,
        "is_admin": key.is_admin,
        "allowed_models": plain(key.allowed_models),
        **limits_record(key.limits),
        "expires_at": plain(key.expires_at),
        "revoked": key.revoked_at is not None,
        "revoked_at": plain(key.revoked_at),
        "metadata": key.metadata,
        "created_at": plain(key.created_at),
        "updated_at": plain(key.updated_at),
        "created_by": key.created_by,
    }
