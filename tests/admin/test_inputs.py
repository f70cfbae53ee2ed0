"""Property tests of the admin API's input rules (admin/inputs.py, admin/params.py, admin/schemas.py).

Whatever arrives, a parser answers with a value or a ValueError (which the API turns into a 400
naming the field), never anything else; and a body or parameter is accepted exactly when the
OpenAPI document says it is valid, judged by the JSON Schema validator schemathesis uses
(jsonschema-rs: ECMA-like regexes, strict formats). Seeded (derandomized), so every run is the same.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from admin import inputs, params
from admin import prompt_schemas as ps
from admin import schemas as s
from admin.openapi import OPERATIONS, openapi_document
from admin.served import ServedModels

PROPERTIES = settings(max_examples=200, derandomize=True, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.too_slow])
SERVED = ServedModels(frozenset({"gpt-test", "gpt-alias"}), (("vendor/", ""), ("x-", "-large")))
DOCUMENT = openapi_document(SERVED)
BODIES = sorted({op.body for op in OPERATIONS if op.body is not None}, key=lambda m: m.__name__)
PARAMS = list({id(param): param for op in OPERATIONS for param in op.params}.values())

# Strings that sit on the rules' edges, mixed into arbitrary text.
EDGES = ["", "\x00", "a\x00b", "²", "٣", "12", "-3", "0", "1.5", "12.500000", "1.0000001", "1e3", "NaN",
         "2030-01-31T12:00:00Z", "2030-01-31t12:00:00z", "2030-01-31T12:00:00", "2030-01-31T12:00:60Z",
         "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+00:01", "2030-02-30T00:00:00Z", "2030-01-31",
         "0001-01-01", "9999-12-31", "20300131", "gpt-test", "gpt-alias", "vendor/m", "vendor/", "x-a-large",
         "x--large", "daily", "key", "team", "team,day", "team, day", "json", "csv", "true", "True", "false",
         "team_01a24e5c477463b669667247e2a4", "abc\n", "a" * 65, "a" * 129, "a" * 257]
TEXT = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(EDGES)
NUMBERS = (st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63), 0.5, 3.0, 1e12, 1e12 - 0.5]))
JSON = st.recursive(st.none() | st.booleans() | NUMBERS | TEXT,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=8)


def validator(schema: dict[str, Any]) -> Any:
    return _compiled(json.dumps(schema, sort_keys=True))


@cache
def _compiled(schema: str) -> Any:
    return jsonschema_rs.validator_for({**json.loads(schema), "components": DOCUMENT["components"]},
                                       validate_formats=True)


def representable(text: str) -> bool:
    """The one rule JSON Schema cannot state: a date or time must lie within the years 1 to 9999, in UTC."""
    try:
        datetime.fromisoformat(text.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        return False
    return True


# JSON values on the fields' edges: types, bounds, lengths, NUL, 64 bits, formats, served names.
EDGE_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2**31 - 1, 2**31, 10**15, 10**15 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1,
    0.5, 1.5, 3.0, 1e12, 1e12 - 0.5, 1e300, 7776000, 7776001, "", "x", "\x00", "a\x00", "x" * 64, "x" * 65,
    "x" * 128, "x" * 129, "x" * 256, "x" * 257, "12.5", "1.123456", "1.1234567", "999999999999.999999",
    "1000000000000", "-1", "1e3", "daily", "yearly", "2030-01-31T12:00:00Z", "2030-01-31T12:00:00",
    "9999-12-31T23:59:59-23:59", "gpt-test", "gpt-alias", "vendor/m", "vendor/", "nope", "team_x", "team x",
    [], ["gpt-test"], ["gpt-test", "gpt-test"], ["nope"], ["gpt-test", "vendor/a", "x-b-large"], ["\x00"], [""],
    ["x" * 257], {}, {"k": "v"}, {"k": "\x00"}, {"\x00": 1}, {"n": 2**63}, {"n": -(2**63)}, {"n": [1, {"d": None}]},
    {"n": 1e300}, {"n": "x" * 20_000},
]
# The smallest body each model accepts, so that a drawn field is judged on its own.
MESSAGES = [{"role": "user", "content": "x"}]
BASES: dict[type[BaseModel], dict[str, Any]] = {s.TeamCreate: {"name": "t"}, ps.TemplateCreate: {
    "name": "t", "messages": MESSAGES}, ps.VersionDraft: {"messages": MESSAGES}, ps.LabelMove: {"version": 1}}


def judge(model: type[BaseModel], body: dict[str, Any]) -> None:
    raw = json.dumps(body, ensure_ascii=False)  # orjson stops at 64-bit integers, JSON does not
    try:
        model.model_validate_json(raw, context={"served": SERVED})
        accepted = True
    except ValidationError as exc:
        error = inputs.invalid_request(exc)
        assert error.status == 400 and error.param is not None, error.message
        accepted = False
    valid = validator({"$ref": f"#/components/schemas/{model.__name__}"}).is_valid(body)
    if valid and not accepted:
        # What the document states only in words: a time that exists in UTC, metadata of at most 16 KiB.
        expires = body.get("expires_at")
        assert (isinstance(expires, str) and not representable(expires)) or len(json.dumps(body)) > 16_000, body
    else:
        assert accepted == valid, body


@pytest.mark.parametrize(("model", "field"), [(m, f) for m in BODIES for f in m.model_fields],
                         ids=lambda x: x if isinstance(x, str) else x.__name__)
def test_every_field_on_its_edges(model: type[BaseModel], field: str) -> None:
    for value in EDGE_VALUES:
        judge(model, {**BASES.get(model, {}), field: value})


@pytest.mark.parametrize("model", BODIES, ids=lambda m: m.__name__)
@PROPERTIES
@given(data=st.data())
def test_a_body_is_accepted_exactly_when_the_document_says_it_is_valid(model: type[BaseModel],
                                                                        data: st.DataObject) -> None:
    drawn = data.draw(st.dictionaries(st.sampled_from([*model.model_fields, "bogus"]),
                                      st.sampled_from(EDGE_VALUES) | JSON, max_size=4))
    judge(model, {**BASES.get(model, {}), **drawn})


def judge_parameter(param: inputs.Param[Any], raw: str) -> None:
    try:
        param.parse(raw)
        accepted = True
    except ValueError:
        accepted = False
    kind = param.schema.get("type")
    if kind in ("integer", "number", "boolean"):
        # A query string holds text: the number or the word, written as JSON writes it.
        canonical = (re.fullmatch(r"-?(0|[1-9][0-9]*)", raw) if kind == "integer"
                     else re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", raw) if kind == "number"
                     else raw in ("true", "false"))
        valid = bool(canonical) and validator(param.schema).is_valid(json.loads(raw))
    elif param is params.CURSOR:
        valid = accepted  # opaque: only the API's own cursors decode; the pattern only frames them
        assert not accepted or validator(param.schema).is_valid(raw)
    else:
        valid = validator(param.schema).is_valid(raw)
    if "format" in json.dumps(param.schema) and valid and not accepted:
        assert not representable(raw), raw  # a real date or time, but not one a datetime can hold
    else:
        assert accepted == valid, raw


def edges_of(schema: dict[str, Any]) -> list[str]:
    """Probes at a parameter's own bounds, one step inside and outside."""
    bounds = [schema[k] for k in ("minimum", "maximum") if k in schema]
    lengths = [schema[k] for k in ("minLength", "maxLength") if k in schema]
    return [str(b + d) for b in bounds for d in (-1, 0, 1)] + ["x" * max(n + d, 0) for n in lengths for d in (-1, 0, 1)]


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: f"{p.name}:{p.description[:20]}")
def test_every_parameter_on_its_edges(param: inputs.Param[Any]) -> None:
    for raw in [*EDGES, *edges_of(param.schema)]:
        judge_parameter(param, raw)


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: f"{p.name}:{p.description[:20]}")
@PROPERTIES
@given(raw=TEXT)
def test_a_parameter_is_accepted_exactly_when_the_document_says_it_is_valid(param: inputs.Param[Any],
                                                                           raw: str) -> None:
    judge_parameter(param, raw)


@PROPERTIES
@given(value=JSON)
def test_the_checks_answer_any_json_with_a_value_or_a_value_error(value: Any) -> None:
    for check in (lambda v: inputs.whole(v, 1, 10), inputs.money, inputs.instant_value, inputs.check_id_value,
                  lambda v: inputs.number(v, 0, 10), lambda v: inputs.metadata({"v": v}, 16 * 1024)):
        try:
            check(value)
        except ValueError:
            pass


def test_metadata_takes_what_postgres_and_orjson_can_keep() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    for bad in ({"k": "a\x00"}, {"a\x00": 1}, {"n": 2**63}, {"n": -(2**63) - 1}, {"n": float("inf")},
                {"l": [[{"x": "\x00"}]]}, {"d": deep}, {"big": "x" * 20_000}):
        with pytest.raises(ValueError):
            inputs.metadata(bad, 16 * 1024)
    fine = {"n": 2**63 - 1, "m": -(2**63), "f": 1.5, "s": "ü ✓", "l": [None, True, {"k": "v"}]}
    assert inputs.metadata(fine, 16 * 1024) == fine


def test_money_rounds_numbers_and_takes_strings_as_written() -> None:
    assert str(inputs.money(1.25)) == "1.250000"
    assert str(inputs.money(0.1234567)) == "0.123457"
    assert str(inputs.money("12.5")) == "12.500000"
    for bad in ("1.0000001", "1e3", "NaN", "-1", -1, 10**12, 10**400, True, None, " 1"):
        with pytest.raises(ValueError):
            inputs.money(bad)


def test_the_served_names_rule_is_the_routers() -> None:
    from gateway.config.file import ModelGroup
    from gateway.routing.router import Router

    groups = [ModelGroup.model_validate({"name": name, "aliases": aliases,
                                         "deployments": [{"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}]})
              for name, aliases in (("gpt-test", ["gpt-alias"]), ("vendor/*", []), ("x-*-large", []))]
    served, router = ServedModels.of(groups), Router(groups)
    check = validator(served.schema())
    for name in ("gpt-test", "gpt-alias", "vendor/m", "vendor/", "vendor", "x-a-large", "x--large", "x-large",
                 "gpt-test2", "other", "vendor/a/b", "x-\x00-large"):
        try:
            router.group(name)
            routed = True
        except Exception:
            routed = False
        assert served.serves(name) == routed, name
        assert check.is_valid(name) == (routed and "\x00" not in name), name
