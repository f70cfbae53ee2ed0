"""The limiter's pure parts: durations, periods, estimates, key names, configuration."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.accounting.limits import estimate
from gateway.accounting.limits.checks import Check, Kind
from gateway.accounting.limits.headers import go_duration
from gateway.accounting.limits.periods import Period, current_period
from gateway.accounting.limits.scopes import scopes_for
from gateway.config.file import ConfigError, Price, config_from_dict
from gateway.core.types import BudgetPeriod, Endpoint, Limits, Principal


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0s"), (12, "12ms"), (999, "999ms"), (1000, "1s"), (6000, "6s"), (7660, "7.66s"), (60_000, "1m0s"),
     (360_000, "6m0s"), (61_500, "1m1.5s"), (3_723_500, "1h2m3.5s"), (3_600_000, "1h0m0s")],
)  # fmt: skip
def test_go_durations(ms: int, text: str) -> None:
    assert go_duration(ms) == text


def _at(text: str, tz: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


@pytest.mark.parametrize(
    ("when", "period", "name", "ends"),
    [
        ("2026-03-10T23:59:59", BudgetPeriod.DAILY, "2026-03-10", "2026-03-11T00:00:00"),
        ("2026-03-11T00:00:00", BudgetPeriod.DAILY, "2026-03-11", "2026-03-12T00:00:00"),
        # Sunday night is still the week that began on Monday; ISO weeks can belong to the next year.
        ("2026-03-15T23:00:00", BudgetPeriod.WEEKLY, "2026-W11", "2026-03-16T00:00:00"),
        ("2026-03-16T00:00:00", BudgetPeriod.WEEKLY, "2026-W12", "2026-03-23T00:00:00"),
        ("2024-12-31T12:00:00", BudgetPeriod.WEEKLY, "2025-W01", "2025-01-06T00:00:00"),
        ("2026-12-31T23:30:00", BudgetPeriod.MONTHLY, "2026-12", "2027-01-01T00:00:00"),
        ("2026-02-28T10:00:00", BudgetPeriod.MONTHLY, "2026-02", "2026-03-01T00:00:00"),
    ],
)
def test_periods_are_calendar_aligned_in_the_time_zone(when: str, period: BudgetPeriod, name: str, ends: str) -> None:
    tz = "America/New_York"
    current = current_period(_at(when, tz), period, ZoneInfo(tz))
    assert (current.name, current.end) == (name, _at(ends, tz))
    assert current.start is not None and current.start <= _at(when, tz) < current.end
    # The period ends where the next begins.
    assert current_period(current.end, period, ZoneInfo(tz)).start == current.end


def test_a_day_with_a_daylight_saving_change_is_23_hours_long() -> None:
    tz = ZoneInfo("Europe/Paris")
    day = current_period(_at("2026-03-29T01:00:00", "Europe/Paris"), BudgetPeriod.DAILY, tz)
    assert day.name == "2026-03-29" and day.start is not None and day.end is not None
    assert day.end - day.start == 23 * 3600


def test_a_budget_without_period_never_resets() -> None:
    assert current_period(0, None, ZoneInfo("UTC")) == Period("all", None, None)


def test_the_same_instant_is_a_different_day_in_another_zone() -> None:
    instant = _at("2026-03-10T20:00:00", "UTC")
    assert current_period(instant, BudgetPeriod.DAILY, ZoneInfo("UTC")).name == "2026-03-10"
    assert current_period(instant, BudgetPeriod.DAILY, ZoneInfo("Asia/Tokyo")).name == "2026-03-11"


def test_prompt_estimate_counts_text_not_images() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "x" * 40},
            {"role": "user", "content": [{"type": "text", "text": "y" * 40},
                                         {"type": "image_url", "image_url": {"url": "data:" + "A" * 100_000}}]},
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "z" * 40}}]},
        ]
    }  # fmt: skip
    assert estimate.prompt_tokens(body, Endpoint.CHAT) == 30 + 3 * estimate.TOKENS_PER_MESSAGE


@pytest.mark.parametrize(
    ("body", "endpoint", "tokens"),
    [
        ({"prompt": "abcdefgh"}, Endpoint.COMPLETIONS, 2),
        ({"prompt": ["abcd", "abcd"]}, Endpoint.COMPLETIONS, 2),
        ({"prompt": [1, 2, 3]}, Endpoint.COMPLETIONS, 3),
        ({"input": [[1, 2], [3]]}, Endpoint.EMBEDDINGS, 3),
        ({"messages": "not a list"}, Endpoint.CHAT, 0),
        ({"messages": [{"content": 7, "tool_calls": 5}]}, Endpoint.CHAT, estimate.TOKENS_PER_MESSAGE),
    ],
)
def test_prompt_estimate_of_other_shapes(body: dict[str, object], endpoint: Endpoint, tokens: int) -> None:
    assert estimate.prompt_tokens(body, endpoint) == tokens


@pytest.mark.parametrize(
    ("body", "endpoint", "tokens"),
    [
        ({}, Endpoint.CHAT, 1024),
        ({"max_tokens": 50}, Endpoint.CHAT, 50),
        ({"max_tokens": 50, "max_completion_tokens": 70, "n": 2}, Endpoint.CHAT, 140),
        ({"max_tokens": "lots", "n": True}, Endpoint.CHAT, 1024),
        ({"max_tokens": -5}, Endpoint.COMPLETIONS, 1024),
        ({"max_tokens": 50}, Endpoint.EMBEDDINGS, 0),
    ],
)
def test_output_estimate(body: dict[str, object], endpoint: Endpoint, tokens: int) -> None:
    assert estimate.output_tokens(body, endpoint, default=1024) == tokens


def test_cost_estimate_is_whole_micro_dollars_rounded_up() -> None:
    price = Price(input_per_mtok=Decimal("0.15"), output_per_mtok=Decimal("0.60"))
    assert estimate.micro_usd(price, 10, 10) == 8  # 7.5 micro-USD
    assert estimate.micro_usd(None, 10, 10) == 0


def test_each_scope_has_a_hash_tag_of_its_own() -> None:
    principal = Principal("key_1", "sk-gw-abc", team_id="team_9", key_limits=Limits(rpm=1), team_limits=Limits(rpm=1))
    key, team, model = scopes_for("gw", principal, "gpt-4o", Limits(tpm=5))
    assert (key.kind, team.kind, model.kind) == ("key", "team", "model")
    # The key's counters do not depend on its team: moving it to another team keeps its spend.
    assert key.base == "{gw:k:key_1}"
    assert team.base == "{gw:t:team_9}"
    assert model.base == "{gw:m:gpt-4o}"
    assert Check(Kind.RPM, key.base + ":rpm", 1, 1).tag == "{gw:k:key_1}"
    [alone] = scopes_for("gw", Principal("key_1", "sk-gw-abc", key_limits=Limits(rpm=1)), "m", None)
    assert alone.base == key.base


def test_names_that_could_break_a_hash_tag_are_hashed() -> None:
    [scope] = scopes_for("gw", None, "evil}{model name", Limits(rpm=1))
    assert scope.base.count("{") == scope.base.count("}") == 1
    assert "evil" not in scope.base
    [same] = scopes_for("gw", None, "evil}{model name", Limits(rpm=1))
    assert same.base == scope.base


def test_the_config_file_takes_model_limits_and_rejects_bad_ones() -> None:
    deployments = [{"base_url": "http://127.0.0.1:1/v1"}]
    raw: dict[str, Any] = {"models": [{"name": "m", "deployments": deployments,
                       "limits": {"rpm": 10, "budget_usd": "2.50", "budget_period": "weekly"}}]}  # fmt: skip
    config, _ = config_from_dict(raw, {"openai"})
    limits = config.models[0].limits
    assert limits is not None and (limits.rpm, limits.budget_usd) == (10, Decimal("2.50"))
    for bad, field in [({"rpm": 0}, "rpm"), ({"budget_period": "hourly"}, "budget_period"), ({"rmp": 5}, "rmp")]:
        raw["models"][0]["limits"] = bad
        with pytest.raises(ConfigError, match=rf"models\[0\]\.limits\.{field}"):
            config_from_dict(raw, {"openai"})


def test_an_unknown_time_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"limits_timezone.*unknown time zone"):
        config_from_dict({"settings": {"limits_timezone": "Mars/Olympus"}, "models": []}, {"openai"})
    with pytest.raises(ConfigError, match="limits_failure_mode"):
        config_from_dict({"settings": {"limits_failure_mode": "sideways"}, "models": []}, {"openai"})


@pytest.mark.parametrize(("body", "endpoint", "micro"), [
    # Images by count and size (a size the price does not list costs `per_image`).
    ({"prompt": "a fox", "n": 2, "size": "1024x1792"}, Endpoint.IMAGES, 160_000),
    ({"prompt": "a fox", "n": "3"}, Endpoint.IMAGE_EDITS, 120_000),
    # Speech by characters, rerank by searches of up to 100 documents.
    ({"input": "x" * 1000}, Endpoint.SPEECH, 15_000),
    ({"query": "q", "documents": ["d"] * 150}, Endpoint.RERANK, 4_000),
])
def test_what_units_reserve(body: dict[str, object], endpoint: Endpoint, micro: int) -> None:
    price = Price(per_image=Decimal("0.04"), per_image_by_size={"1024x1792": Decimal("0.08")},
                  per_million_characters=Decimal("15"), per_search=Decimal("0.002"))
    units = estimate.planned_units(body, endpoint)
    assert estimate.micro_usd(price, 0, 0, units) == micro
    assert estimate.output_tokens(body, endpoint, 4096) == 0
