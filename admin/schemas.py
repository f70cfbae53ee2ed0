"""What the admin API accepts and returns. The input models validate; the output models only
describe (for the OpenAPI document, and for the tests that hold responses to it).

Money is a decimal with at most 6 places, sent as a JSON number or string and returned as a
string; times are ISO-8601 with a time zone.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from gateway.core.types import BudgetPeriod, Limits

MAX_METADATA_BYTES = 16 * 1024
INT32_MAX = 2**31 - 1

Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6, description="USD, at most 6 decimal places")]
Count = Annotated[StrictInt, Field(ge=1, le=INT32_MAX)]
Tokens = Annotated[StrictInt, Field(ge=1, le=10**15)]
Name = Annotated[str, Field(min_length=1, max_length=128)]
Id = Annotated[str, Field(min_length=1, max_length=64)]
ModelName = Annotated[str, Field(min_length=1, max_length=256)]
Period = Literal["daily", "weekly", "monthly"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("metadata", check_fields=False)
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(orjson.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes of JSON")
        return value

    @field_validator("allowed_models", check_fields=False)
    @classmethod
    def _distinct_models(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("must not name a model twice")
        return value

    def limits(self) -> Limits:
        period = getattr(self, "budget_period", None)
        return Limits(
            rpm=getattr(self, "rpm", None),
            tpm=getattr(self, "tpm", None),
            max_parallel=getattr(self, "max_parallel", None),
            budget_usd=getattr(self, "budget_usd", None),
            budget_period=None if period is None else BudgetPeriod(period),
        )

    def changes(self) -> dict[str, Any]:
        """The fields the request named, with their new values (null clears a cap)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class _LimitFields(_Input):
    rpm: Count | None = Field(default=None, description="requests per minute")
    tpm: Tokens | None = Field(default=None, description="tokens per minute")
    max_parallel: Count | None = Field(default=None, description="requests in flight at once")
    budget_usd: Money | None = None
    budget_period: Period | None = Field(
        default=None, description="when the budget resets, calendar-aligned; null: never"
    )


class TeamCreate(_LimitFields):
    name: Name
    metadata: dict[str, Any] = Field(default_factory=dict)


def _optional(schema: dict[str, Any]) -> None:
    # The field may be left out, but not sent as null: the schema shows no null default.
    schema.pop("default", None)


class TeamUpdate(_LimitFields):
    name: Name = Field(default=None, json_schema_extra=_optional)  # type: ignore[assignment]
    metadata: dict[str, Any] = Field(default=None, json_schema_extra=_optional)  # type: ignore[arg-type]

    @field_validator("name", "metadata", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be changed but not cleared")
        return value


class KeyCreate(_LimitFields):
    name: Annotated[str, Field(max_length=128)] = ""
    team_id: Id | None = None
    is_admin: StrictBool = Field(default=False, description="may use the admin API")
    allowed_models: Annotated[list[ModelName], Field(max_length=1000)] | None = Field(
        default=None, description="null: every model the gateway serves"
    )
    expires_at: AwareDatetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class KeyUpdate(KeyCreate):
    @field_validator("name", "is_admin", "metadata", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be changed but not cleared")
        return value


class KeyRotate(_Input):
    grace_seconds: Annotated[float, Field(ge=0, le=90 * 86_400, strict=False)] | None = Field(
        default=None, description="how long the old key keeps working; default: the gateway's setting"
    )


# Output shapes, for the OpenAPI document.


class LimitsOut(BaseModel):
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    budget_usd: str | None
    budget_period: Period | None


class TeamOut(LimitsOut):
    object: Literal["team"]
    id: str
    name: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    created_by: str


class KeyOut(LimitsOut):
    object: Literal["api_key"]
    id: str
    name: str
    team_id: str | None
    prefix: str = Field(description="the start of the key, enough to recognise it, never to use it")
    is_admin: bool
    allowed_models: list[str] | None
    expires_at: datetime | None
    revoked: bool
    revoked_at: datetime | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    created_by: str


class KeyWithSecret(KeyOut):
    key: str = Field(description="the full key: shown in this response only, never again")


class RotatedKey(KeyWithSecret):
    previous_key_valid_until: datetime = Field(description="until when the key it replaces still works")


class _ListOut(BaseModel):
    object: Literal["list"]
    has_more: bool
    first_id: str | None
    last_id: str | None


class TeamList(_ListOut):
    data: list[TeamOut]


class KeyList(_ListOut):
    data: list[KeyOut]


class TeamDeleted(BaseModel):
    object: Literal["team.deleted"]
    id: str
    deleted: bool


class SpendOut(BaseModel):
    spent_usd: str
    period_start: datetime | None
    period_end: datetime | None
    extra: dict[str, Any]


class SpendReport(BaseModel):
    object: Literal["spend"]
    scope: Literal["key", "team"]
    id: str
    limits: LimitsOut
    spend: SpendOut | None = Field(description="null while no limiter reports spend")


class AuditOut(BaseModel):
    object: Literal["audit_entry"]
    id: int
    at: datetime
    actor: str = Field(description="'master', or 'key:<id>' for an admin key")
    action: str
    target_type: Literal["key", "team"]
    target_id: str
    details: dict[str, Any]


class AuditList(BaseModel):
    object: Literal["list"]
    data: list[AuditOut]
    has_more: bool
    first_id: int | None
    last_id: int | None


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorOut(BaseModel):
    error: ErrorDetail
