"""Reading admin requests: bodies through the input models, query parameters one by one.

Every failure is a 400 in OpenAI's shape whose `param` names the field, raised before
anything is written.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from gateway.core.errors import InvalidRequest
from gateway.edge.body import read_body

MAX_ADMIN_BODY = 256 * 1024
M = TypeVar("M", bound=BaseModel)


async def read_model(request: Request, model: type[M]) -> M:
    raw = await read_body(request, MAX_ADMIN_BODY)
    try:
        return model.model_validate_json(raw.strip() or b"{}")
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
    param = field_path(error["loc"])
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


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidRequest(f"Invalid value for '{name}': an integer from {low} to {high}.", param=name,
                             code="invalid_value")
    return int(raw)


def query_bool(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise InvalidRequest(f"Invalid value for '{name}': true or false.", param=name, code="invalid_value")
    return raw.lower() == "true"


def query_str(request: Request, name: str, max_length: int = 64) -> str | None:
    raw = request.query_params.get(name)
    if raw is not None and not 0 < len(raw) <= max_length:
        raise InvalidRequest(f"Invalid value for '{name}': 1 to {max_length} characters.", param=name,
                             code="invalid_value")
    return raw
