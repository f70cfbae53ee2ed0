"""Budget periods, calendar-aligned in the configured time zone.

A period is named by its start (`2026-11-23`, `2026-W48`, `2026-11`); the name goes into the
counter's key, so a new period starts from zero without anything being reset.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from gateway.core.types import BudgetPeriod

FOREVER = "all"


@dataclass(slots=True, frozen=True)
class Period:
    name: str
    # Epoch seconds; None for a budget that never resets.
    start: float | None
    end: float | None


def current_period(now_s: float, period: BudgetPeriod | None, tz: ZoneInfo) -> Period:
    """The period `now_s` falls in."""
    if period is None:
        return Period(FOREVER, None, None)
    period = BudgetPeriod(period)
    today = dt.datetime.fromtimestamp(now_s, tz).date()
    if period is BudgetPeriod.DAILY:
        return Period(today.isoformat(), _midnight(today, tz), _midnight(today + dt.timedelta(days=1), tz))
    if period is BudgetPeriod.WEEKLY:
        year, week, weekday = today.isocalendar()
        monday = today - dt.timedelta(days=weekday - 1)
        return Period(f"{year}-W{week:02d}", _midnight(monday, tz), _midnight(monday + dt.timedelta(days=7), tz))
    first = today.replace(day=1)
    next_month = dt.date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return Period(f"{today.year}-{today.month:02d}", _midnight(first, tz), _midnight(next_month, tz))


def _midnight(day: dt.date, tz: ZoneInfo) -> float:
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).timestamp()
