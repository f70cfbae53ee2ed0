"""HTML forms in, admin API bodies out.

Forms are read here (urlencoded only: the UI uploads no files) and turned into the JSON the
admin API takes. Values are passed on as typed as a form can say, and anything that is not
plainly right ("abc" for rpm) is passed on as is, so the API's own validation names the field
and says why: one set of rules, one set of messages.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request

from gateway.core.errors import GatewayError, InvalidRequest

MAX_FORM_BYTES = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"
LIMIT_FIELDS = ("rpm", "tpm", "max_parallel", "budget_usd", "budget_period")


class FormError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def read_form(request: Request) -> dict[str, str]:
    """The submitted fields (the last value of a repeated one); 400/413 for anything else."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        raise FormError(f"Send the form as {FORM_TYPE}.", 415)
    size = 0
    parts: list[bytes] = []
    async for part in request.stream():
        size += len(part)
        if size > MAX_FORM_BYTES:
            raise FormError(f"The form is larger than {MAX_FORM_BYTES} bytes.", 413)
        parts.append(part)
    try:
        return dict(parse_qsl(b"".join(parts).decode(), keep_blank_values=True, max_num_fields=200))
    except (UnicodeDecodeError, ValueError):
        raise FormError("The form could not be read.") from None


@dataclass
class Feedback:
    """What went wrong with a form: one message for the banner, and the field it is about."""

    message: str
    field: str | None = None
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    status: int = 400

    @classmethod
    def of(cls, error: GatewayError) -> Feedback:
        # The API names nested fields `allowed_models[1]`: the form has one input for all of them.
        field_name = error.param.split("[")[0].split(".")[0] if error.param else None
        return cls(error.message, field_name, {field_name: error.message} if field_name else {}, error.status)


def _number(value: str) -> int | str:
    text = value.strip()
    # ASCII digits only (str.isdigit() also says yes to "²", which int() refuses), and few enough
    # that the number encodes as JSON; the API names the field for anything else.
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else text


def _text(form: dict[str, str], name: str) -> str:
    return form.get(name, "").strip()


def limits_body(form: dict[str, str], *, for_update: bool) -> dict[str, Any]:
    """The limit fields; an empty input is "no cap": left out on create, null (clears) on update."""
    body: dict[str, Any] = {}
    for name in LIMIT_FIELDS:
        value = _text(form, name)
        if value:
            body[name] = value if name in ("budget_usd", "budget_period") else _number(value)
        elif for_update:
            body[name] = None
    return body


def metadata_body(form: dict[str, str]) -> dict[str, Any]:
    text = _text(form, "metadata")
    if not text:
        return {}
    try:
        value = orjson.loads(text)
        orjson.dumps(value)  # what the API is handed must encode again: orjson nests 255 deep, no more
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        raise InvalidRequest("Invalid value for 'metadata': not valid JSON, or nested too deeply.",
                             param="metadata") from None
    if not isinstance(value, dict):
        raise InvalidRequest("Invalid value for 'metadata': a JSON object, like {\"owner\": \"search\"}.",
                             param="metadata")
    return {"metadata": value}


def team_body(form: dict[str, str], *, for_update: bool) -> dict[str, Any]:
    return {"name": _text(form, "name"), **limits_body(form, for_update=for_update), **metadata_body(form)}


def models_list(text: str) -> list[str] | None:
    """Comma- or line-separated model names; none at all means every model."""
    names = [part.strip() for line in text.splitlines() for part in line.split(",")]
    names = [n for n in names if n]
    return names or None


def expiry(text: str) -> str | None:
    """A `datetime-local` value (no seconds, no zone) is read as UTC; a value with its own zone
    keeps it. Either is handed on as RFC 3339, which is what the API takes."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text  # the API says what is wrong with it
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def key_body(form: dict[str, str], *, for_update: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": _text(form, "name"),
        "allowed_models": models_list(form.get("allowed_models", "")),
        **limits_body(form, for_update=for_update),
        **metadata_body(form),
    }
    team = _text(form, "team_id")
    if team or for_update:
        body["team_id"] = team or None
    expires = expiry(form.get("expires_at", ""))
    if expires or for_update:
        body["expires_at"] = expires
    if "is_admin" in form or for_update:
        body["is_admin"] = form.get("is_admin") == "on"
    return body


def rotate_body(form: dict[str, str]) -> dict[str, Any]:
    grace = _text(form, "grace_seconds")
    if not grace:
        return {}
    try:
        return {"grace_seconds": float(grace)}
    except ValueError:
        raise InvalidRequest("Invalid value for 'grace_seconds': a number of seconds.", param="grace_seconds") \
            from None


def stored_values(record: dict[str, Any]) -> dict[str, str]:
    """A team's or key's stored fields as its edit form shows them."""
    values = {name: "" if record.get(name) is None else str(record[name])
              for name in ("name", "team_id", *LIMIT_FIELDS)}
    metadata = record.get("metadata")
    values["metadata"] = orjson.dumps(metadata, option=orjson.OPT_INDENT_2).decode() if metadata else ""
    return values
