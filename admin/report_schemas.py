"""What the privacy, complexity and forecast parts of the admin API accept and return.

The one input is a privacy subject (admin/privacy_api.py); the output models only describe, for
the OpenAPI document (admin/openapi.py) and the tests that hold responses to it.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, field_validator, model_validator
from pydantic_core import PydanticCustomError

from admin.schemas import optional
from gateway.privacy.subject import MAX_ID_CHARS

# What gateway/privacy/subject.py takes: printable text (no control characters), 1 to 256 long.
SUBJECT_PATTERN = r"^[^\x00-\x1f]+$"
_SUBJECT = re.compile(SUBJECT_PATTERN)


def _subject_id(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not 1 <= len(value) <= MAX_ID_CHARS or not _SUBJECT.fullmatch(value):
        raise ValueError(f"must be 1 to {MAX_ID_CHARS} characters, none of them a control character")
    return value


SubjectId = Annotated[str, PlainValidator(_subject_id), WithJsonSchema(
    {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS, "pattern": SUBJECT_PATTERN})]


class SubjectBody(BaseModel):
    """Exactly one of the two: an end user's id as clients send it, or a key's id."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1, "maxProperties": 1})
    user: SubjectId | None = Field(
        default=None, description="the `user` / `safety_identifier` clients send", json_schema_extra=optional)
    key: SubjectId | None = Field(default=None, description="a key's id", json_schema_extra=optional)

    @field_validator("user", "key", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must be a string; leave it out instead")
        return value

    @model_validator(mode="after")
    def _one(self) -> SubjectBody:
        if len(self.model_fields_set) != 1:
            raise PydanticCustomError("one_subject", "name exactly one of 'user' (an end user's id) and 'key' "
                                      "(a key id)", {"param": "user"})
        return self


class ErasureOut(BaseModel):
    object: Literal["privacy.erasure"]
    subject_ref: str = Field(description="the audit log's pseudonym for the subject")
    counts: dict[str, int] = Field(description="what was erased, per source")
    pending_spill_files: int
    replacement_key_id: str | None


class TierOut(BaseModel):
    tier: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: str
    unpriced: int
    mean_score: float | None
    top_tier_cost_usd: str | None = Field(description="the same tokens at the top tier's price")


class ComplexityTotal(BaseModel):
    requests: int
    cost_usd: str
    top_tier_cost_usd: str | None
    saved_usd: str | None


class ComplexityReport(BaseModel):
    object: Literal["complexity_report"]
    model: str
    start: date
    end: date
    top_tier: str
    tiers: list[str]
    data: list[TierOut]
    total: ComplexityTotal


DayAmount = Annotated[list[str], Field(min_length=2, max_length=2, description="[YYYY-MM-DD, USD]")]


class BudgetForecastOut(BaseModel):
    object: Literal["budget_forecast"]
    scope: Literal["team", "key"]
    id: str
    name: str
    period: str
    period_start: date
    period_end: date
    budget_usd: str
    spent_usd: str
    projected_usd: str
    low_usd: str
    high_usd: str
    runs_out_on: date | None
    runs_out_before_period_end: bool
    history: list[DayAmount]
    forecast: list[DayAmount]


class ForecastList(BaseModel):
    object: Literal["list"]
    data: list[BudgetForecastOut]


class RecommendationOut(BaseModel):
    kind: Literal["cheaper_deployment", "cache", "idle_key"]
    subject: str = Field(description="the model group, 'response cache', or the key's id")
    money_usd: str = Field(description="the money at stake (gateway/accounting/recommend.py says how it is counted)")
    summary: str
    details: dict[str, Any]


class RecommendationCriteria(BaseModel):
    days: int
    min_requests: int
    max_error_rate_increase: float
    max_latency_ratio: float
    cache_ttl_s: float
    idle_weeks: int
    lookback_days: int


class Recommendations(BaseModel):
    object: Literal["recommendations"]
    start: datetime
    end: datetime
    criteria: RecommendationCriteria
    total_usd: str
    data: list[RecommendationOut] = Field(description="the most money first")
