"""What the prompt templates API (admin/prompts_api.py) accepts and returns.

The input models hold every rule a JSON Schema can state; gateway/prompts/store.py (`Draft.of`)
adds the one it cannot: the `{{name}}` placeholders of the messages are exactly the declared
variables. The output models only describe, for the OpenAPI document.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, field_validator

from admin import inputs
from admin.schemas import MAX_METADATA_BYTES, Name, optional
from gateway.prompts.render import ROLES
from gateway.prompts.store import MAX_VERSION, PARAMS

MAX_NOTE = 1000
# A placeholder's name, as gateway/prompts/render.py finds them in `{{name}}`.
VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"

Content = Annotated[str, AfterValidator(inputs.text), WithJsonSchema({"type": "string", "pattern": inputs.NO_NUL})]
Variable = Annotated[str, Field(pattern=VARIABLE_PATTERN)]
Note = Annotated[str, Field(max_length=MAX_NOTE), AfterValidator(inputs.text),
                 WithJsonSchema({"type": "string", "maxLength": MAX_NOTE, "pattern": inputs.NO_NUL})]
ModelText = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(inputs.text),
                      WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 256, "pattern": inputs.NO_NUL})]


def _params(value: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(value) - PARAMS)
    if unknown:
        raise ValueError(f"may set only {', '.join(sorted(PARAMS))} (not {unknown[0]})")
    return inputs.metadata(value, MAX_METADATA_BYTES)


# `params`' values are any JSON storable as jsonb: the document refers them to MetadataValue.
Params = Annotated[dict[str, Any], AfterValidator(_params),
                   WithJsonSchema({"type": "object", "propertyNames": {"enum": sorted(PARAMS)}})]


Role = Literal["assistant", "developer", "system", "user"]
assert set(Role.__args__) == ROLES  # type: ignore[attr-defined]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    content: Content


class VersionDraft(BaseModel):
    """A new version: its messages, and what it may pin (the model, sampling parameters)."""

    model_config = ConfigDict(extra="forbid")
    messages: Annotated[list[Message], Field(min_length=1, max_length=1000)]
    variables: list[Variable] | None = Field(
        default=None, description="exactly the `{{name}}` placeholders the messages use; default: those",
        json_schema_extra=optional)
    model: ModelText | None = Field(default=None, description="the model this version pins")
    params: Params = Field(default_factory=dict, description="sampling parameters this version pins")
    note: Note | None = None

    @field_validator("variables", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must be a list of names (leave it out to take the placeholders used)")
        return value

    def draft_fields(self) -> dict[str, Any]:
        """As `Draft.of` takes them: `variables` only when sent."""
        fields = self.model_dump(exclude={"variables"})
        if "variables" in self.model_fields_set:
            fields["variables"] = self.variables
        return fields


class TemplateCreate(VersionDraft):
    name: Name


class LabelMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Annotated[int, PlainValidator(lambda v: inputs.whole(v, 1, MAX_VERSION)),
                       WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_VERSION})]


# Output shapes


class MessageOut(BaseModel):
    role: str
    content: str


class VersionOut(BaseModel):
    object: Literal["prompt_version"]
    template_id: str
    version: int
    messages: list[MessageOut]
    variables: list[str]
    model: str | None
    params: dict[str, Any]
    note: str | None
    created_at: datetime
    created_by: str


class LabelOut(BaseModel):
    version: int
    previous_version: int | None = Field(description="where a rollback moves the label back to")
    updated_at: datetime
    updated_by: str


class TemplateOut(BaseModel):
    object: Literal["prompt_template"]
    id: str
    name: str
    created_at: datetime
    created_by: str
    labels: dict[str, LabelOut]
    versions: list[VersionOut] = Field(description="oldest first; empty in a list of templates")


class TemplateList(BaseModel):
    object: Literal["list"]
    data: list[TemplateOut]


class LabelMoved(BaseModel):
    object: Literal["prompt_label"]
    template_id: str
    label: str
    version: int
    previous_version: int | None


class PromptDiff(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    object: Literal["prompt_diff"]
    from_: int = Field(alias="from")
    to: int
    diff: str = Field(description="a unified diff; empty when the versions are the same")


class VersionStats(BaseModel):
    version: int
    requests: int
    errors: int
    error_rate: float
    mean_latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    cost_usd: str


class PromptStats(BaseModel):
    object: Literal["prompt_stats"]
    template_id: str
    start: date
    end: date
    data: list[VersionStats]
