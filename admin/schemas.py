"""What the admin API accepts and returns. The input models validate; the output models only
describe (for the OpenAPI document, and for the tests that hold responses to it).

Money is sent as a JSON number (rounded to 6 places) or a decimal string (at most 6 places) and
returned as a string; times are RFC 3339 with an offset. The rules themselves are in
admin/inputs.py, each beside the JSON Schema that states it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.fields import FieldInfo

from admin import inputs
from gateway.core.types import BudgetPeriod, Limits

MAX_METADATA_BYTES = 16 * 1024
INT32_MAX = 2**31 - 1
MAX_GRACE_S = 90 * 86_400


# A bounded integer's and a bounded text's rules and schema, as metadata: `Annotated[int, *_integer(1, 10)]`.
def _integer(low: int, high: int) -> tuple[PlainValidator, WithJsonSchema]:
    return (PlainValidator(lambda v: inputs.whole(v, low, high)),
            WithJsonSchema({"type": "integer", "minimum": low, "maximum": high}))


def _text(min_length: int, max_length: int) -> tuple[FieldInfo, AfterValidator, WithJsonSchema]:
    return (Field(min_length=min_length, max_length=max_length), AfterValidator(inputs.text),
            WithJsonSchema({"type": "string", "minLength": min_length, "maxLength": max_length,
                            "pattern": inputs.NO_NUL}))


def _served(name: str, info: ValidationInfo) -> str:
    """A model the gateway serves (admin/served.py): the API hands its `ServedModels` in as context."""
    served = (info.context or {}).get("served")
    if served is not None and not served.serves(name):
        raise ValueError(f"the gateway serves no model `{name}`")
    return name


Money = Annotated[Decimal, PlainValidator(inputs.money), WithJsonSchema({"anyOf": [
    {"type": "number", "minimum": 0, "exclusiveMaximum": inputs.USD_BELOW},
    {"type": "string", "pattern": inputs.MONEY_PATTERN},
]})]
Count = Annotated[int, *_integer(1, INT32_MAX)]
Tokens = Annotated[int, *_integer(1, 10**15)]
Name = Annotated[str, *_text(1, 128)]
Id = Annotated[str, PlainValidator(inputs.check_id_value),
               WithJsonSchema({"type": "string", "pattern": inputs.ID_PATTERN})]
KeyName = Annotated[str, *_text(0, 128)]
# Its schema here says only "text"; the OpenAPI document adds the names served (admin/openapi.py).
ModelName = Annotated[str, *_text(1, 256), AfterValidator(_served)]
Period = Literal["daily", "weekly", "monthly"]
# Its values' schema (strings without NUL, numbers within 64 bits, at any depth) is recursive, so
# the OpenAPI document adds it (admin/openapi.py); pydantic states only the object.
Metadata = Annotated[dict[str, Any], AfterValidator(lambda v: inputs.metadata(v, MAX_METADATA_BYTES))]
Instant = Annotated[datetime, PlainValidator(inputs.instant_value),
                    WithJsonSchema({"type": "string", "format": "date-time"})]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
    budget_usd: Money | None = Field(
        default=None, description="USD, rounded to 6 decimal places; a JSON number or a decimal string"
    )
    budget_period: Period | None = Field(
        default=None, description="when the budget resets, calendar-aligned; null: never"
    )


class TeamCreate(_LimitFields):
    name: Name
    metadata: Metadata = Field(default_factory=dict)


def optional(schema: dict[str, Any]) -> None:
    """For a field that may be left out (it is None then) but not sent as null (a validator refuses
    it): the schema shows neither the null default nor null among the values."""
    schema.pop("default", None)
    (value,) = [value for value in schema.pop("anyOf") if value != {"type": "null"}]
    schema.update(value)


class TeamUpdate(_LimitFields):
    name: Name | None = Field(default=None, json_schema_extra=optional)
    metadata: Metadata | None = Field(default=None, json_schema_extra=optional)

    @field_validator("name", "metadata", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be changed but not cleared")
        return value


class KeyCreate(_LimitFields):
    name: KeyName = ""
    team_id: Id | None = None
    is_admin: StrictBool = Field(default=False, description="may use the admin API")
    allowed_models: Annotated[list[ModelName], Field(max_length=1000, json_schema_extra={"uniqueItems": True})] \
        | None = Field(default=None, description="null: every model the gateway serves")
    expires_at: Instant | None = Field(default=None, description="RFC 3339 with an offset")
    metadata: Metadata = Field(default_factory=dict)


class KeyUpdate(KeyCreate):
    @field_validator("name", "is_admin", "metadata", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be changed but not cleared")
        return value


class KeyRotate(_Input):
    grace_seconds: Annotated[float, PlainValidator(lambda v: inputs.number(v, 0, MAX_GRACE_S)),
                             WithJsonSchema({"type": "number", "minimum": 0, "maximum": MAX_GRACE_S})] | None = Field(
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
    target_type: Literal["key", "team", "privacy_subject", "prompt"]
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


class TotalsOut(BaseModel):
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    estimated: int
    unpriced: int
    cost_usd: str


class SpendItem(TotalsOut):
    """One group: the values it is grouped by (those named in `group_by`), then its totals."""

    team: str | None = None
    key: str | None = None
    model: str | None = None
    provider: str | None = None
    day: str | None = None


class LedgerSpend(BaseModel):
    object: Literal["spend"]
    start: date
    end: date
    group_by: list[str]
    data: list[SpendItem]
    total: TotalsOut


class LedgerRowOut(BaseModel):
    ts: datetime
    request_id: str
    endpoint: str
    status: int
    cost_usd: str | None = Field(description="null: tokens were used but no price is known")


class LedgerRows(BaseModel):
    object: Literal["list"]
    data: list[LedgerRowOut] = Field(description="each row has every column of the ledger; the main ones shown")
    has_more: bool
    next_cursor: str | None


class LedgerStatus(BaseModel):
    object: Literal["ledger_status"]
    enabled: bool
