"""Reading admin requests: every rule an input keeps, each beside the JSON Schema that states it.

Bodies go through the models of admin/schemas.py, which are built from the checks here; query
parameters through the `Param`s below. The OpenAPI document (admin/openapi.py) is made from the
same objects, so what it promises and what is enforced do not drift apart. Every failure is a
400 in OpenAI's shape whose `param` names the field, raised before any store is asked.

PostgreSQL cannot store a NUL character in text or JSON, and JSON interchange stops at 64-bit
integers, so no string anywhere may hold a NUL and no number may leave the signed 64-bit range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from gateway.core.errors import InvalidRequest
from gateway.edge.body import read_body

MAX_ADMIN_BODY = 256 * 1024
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# What the document promises of every string, in a dialect ECMA-262, Python and Rust regexes share.
NO_NUL = r"^[^\x00]*$"
# The ids the gateway issues (`team_…`, `key_…`), and no other characters.
ID_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")
# Money is stored in micro-dollars, a signed 64-bit integer: 6 decimals, under a trillion dollars.
USD_PLACES, USD_BELOW = 6, 10**12
MONEY_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,6})?$"
# An integer as JSON writes it, in ASCII: "²" and "٣" are digits to Python, not to JSON.
_INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,18})")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# RFC 3339's date-time, which is what JSON Schema's `format: date-time` means.
_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                      r"([Zz]|[+-][0-9]{2}:[0-9]{2})")
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


# Bodies


async def read_model(request: Request, model: type[M], *, required: bool = False,
                     context: dict[str, Any] | None = None) -> M:
    """The body as `model` (`context`: what its checks need to know, such as the models served);
    an empty body is `{}` unless the operation needs one."""
    raw = (await read_body(request, MAX_ADMIN_BODY)).strip()
    if not raw and required:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        return model.model_validate_json(raw or b"{}", context=context)
    except ValidationError as exc:
        raise invalid_request(exc) from None


def invalid_request(exc: ValidationError) -> InvalidRequest:
    error = exc.errors(include_url=False)[0]
    kind = error["type"]
    if kind == "json_invalid":
        return InvalidRequest(
            "We could not parse the JSON body of your request. Send valid JSON with "
            "'Content-Type: application/json'."
        )
    # A rule over several fields (admin/report_schemas.py) names the first of them in its context.
    param = field_path(error["loc"]) or str((error.get("ctx") or {}).get("param", ""))
    if not param:
        return InvalidRequest("The request body must be a JSON object.")
    if kind == "extra_forbidden":
        return InvalidRequest(f"Unrecognized request argument supplied: {param}", param=param, code="unknown_parameter")
    if kind == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    message = str(error["msg"]).removeprefix("Value error, ")
    return InvalidRequest(f"Invalid value for '{param}': {message}.", param=param, code="invalid_value")


def field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


# The checks, shared by bodies and query parameters. Each raises ValueError with the reason.


def text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def whole(value: object, low: int, high: int) -> int:
    """A JSON integer: `3` or `3.0` (JSON Schema's `integer` takes both), never `true` or `"3"`."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    if not low <= value <= high:
        raise ValueError(f"must be an integer from {low} to {high}")
    return value


def number(value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"must be a number from {low} to {high}")
    return float(value)


def money(value: object) -> Decimal:
    """A decimal string with at most 6 decimals, or a JSON number (a binary float to most clients,
    so its decimals mean nothing exact) rounded to 6; from 0 up to a trillion."""
    if isinstance(value, str) and re.fullmatch(MONEY_PATTERN, value):
        amount = Decimal(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, float) and math.isfinite(value):
        amount = Decimal(repr(value))
    else:
        raise ValueError(f"must be a number, or a decimal string with at most {USD_PLACES} decimals such as "
                         '"12.50"')
    if not 0 <= amount < USD_BELOW:
        raise ValueError(f"must be at least 0 and less than {USD_BELOW}")
    return amount.quantize(Decimal(1).scaleb(-USD_PLACES))


def instant(value: str) -> datetime:
    """An RFC 3339 date-time with its offset, as a UTC datetime (which must exist)."""
    if not _INSTANT.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, such as 2030-01-31T12:00:00Z")
    try:
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except ValueError:
        raise ValueError("is not a valid date and time") from None
    except OverflowError:
        raise ValueError("is out of range: it falls outside the years 1 to 9999 in UTC") from None


def instant_value(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be a string: an RFC 3339 date-time")
    return instant(value)


def day(value: str) -> date:
    if not _DAY.fullmatch(value):
        raise ValueError("must be a date, YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a valid date") from None


def metadata(value: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Free-form JSON an operator attaches; it must be storable as PostgreSQL `jsonb` and as orjson."""
    pending: list[Any] = [value]
    while pending:  # a loop, not recursion: the depth is the client's to choose
        item = pending.pop()
        if isinstance(item, dict):
            for key in item:
                text(key)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            text(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            if not INT64_MIN <= item <= INT64_MAX:  # also refuses infinities; JSON has no NaN
                raise ValueError(f"numbers must lie from {INT64_MIN} to {INT64_MAX}")
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError:
        raise ValueError("is nested too deeply") from None
    if size > max_bytes:
        raise ValueError(f"must be at most {max_bytes} bytes of JSON")
    return value


def metadata_schema(ref: str) -> dict[str, Any]:
    """`metadata`'s values: JSON whose strings hold no NUL and whose numbers fit 64 bits (`ref` is this)."""
    string = {"type": "string", "pattern": NO_NUL}
    return {"anyOf": [
        {"type": "null"}, {"type": "boolean"}, string,
        {"type": "number", "minimum": INT64_MIN, "maximum": INT64_MAX},
        {"type": "array", "items": {"$ref": ref}},
        {"type": "object", "propertyNames": string, "additionalProperties": {"$ref": ref}},
    ]}  # fmt: skip


# Query parameters


@dataclass(frozen=True, slots=True)
class Param(Generic[T]):
    """One query parameter: its JSON Schema for the document, and the parser that keeps to it."""

    name: str
    description: str
    schema: dict[str, Any]
    parse: Callable[[str], T] = field(repr=False)
    where: Literal["query", "path"] = "query"
    required: bool = False  # a query parameter without which the operation is a 400

    def read(self, request: Request) -> T | None:
        raw = request.query_params.get(self.name) if self.where == "query" else request.path_params[self.name]
        if raw is None:
            return None
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise InvalidRequest(f"Invalid value for '{self.name}': {exc}.", param=self.name,
                                 code="invalid_value") from None  # fmt: skip

    def get(self, request: Request, default: T) -> T:
        value = self.read(request)
        return default if value is None else value

    def need(self, request: Request) -> T:
        value = self.read(request)
        if value is None:
            raise InvalidRequest(f"Missing required parameter: '{self.name}'.", param=self.name,
                                 code="missing_required_parameter")
        return value


def integer_param(name: str, low: int, high: int, description: str) -> Param[int]:
    def parse(raw: str) -> int:
        if not _INTEGER.fullmatch(raw):
            raise ValueError(f"an integer from {low} to {high}")
        return whole(int(raw), low, high)

    return Param(name, description, {"type": "integer", "minimum": low, "maximum": high}, parse)


# A number as JSON writes it.
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def number_param(name: str, low: float, high: float, description: str) -> Param[float]:
    def parse(raw: str) -> float:
        if not _NUMBER.fullmatch(raw) or not low <= float(raw) <= high:
            raise ValueError(f"a number from {low:g} to {high:g}")
        return float(raw)

    return Param(name, description, {"type": "number", "minimum": low, "maximum": high}, parse)


def text_param(name: str, max_length: int, description: str) -> Param[str]:
    def parse(raw: str) -> str:
        if not 0 < len(raw) <= max_length:
            raise ValueError(f"1 to {max_length} characters")
        return text(raw)

    return Param(name, description, {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": NO_NUL},
                 parse)


def id_param(name: str, description: str, where: Literal["query", "path"] = "query") -> Param[str]:
    return Param(name, description, {"type": "string", "pattern": ID_PATTERN}, check_id, where)


def check_id_value(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return check_id(value)


def check_id(raw: str) -> str:
    if not _ID.fullmatch(raw):
        raise ValueError("an id: 1 to 64 letters, digits, '_' or '-'")
    return raw


def choice_param(name: str, values: Sequence[str], description: str) -> Param[str]:
    def parse(raw: str) -> str:
        if raw not in values:
            raise ValueError(" or ".join(values))
        return raw

    return Param(name, description, {"type": "string", "enum": list(values)}, parse)


def bool_param(name: str, description: str) -> Param[bool]:
    def parse(raw: str) -> bool:
        if raw not in ("true", "false"):
            raise ValueError("true or false")
        return raw == "true"

    return Param(name, description, {"type": "boolean"}, parse)


def day_param(name: str, description: str) -> Param[date]:
    return Param(name, description, {"type": "string", "format": "date"}, day)


def instant_param(name: str, description: str) -> Param[datetime]:
    """A date-time, or a date meaning its midnight in UTC."""

    def parse(raw: str) -> datetime:
        if _DAY.fullmatch(raw):
            return datetime.combine(day(raw), datetime.min.time(), UTC)
        return instant(raw)

    schema = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}
    return Param(name, description, schema, parse)
