"""Spend forecasts from the ledger's daily rollup: where a budget period will end, and when it runs out.

The method is a level times a day-of-week factor, both estimated from the days at hand:

    factor[w]  the mean spend on weekday w over the history, divided by the mean of all days,
               pulled toward 1 when fewer than three weeks are known (a weekday seen once says little)
    level      an exponentially weighted mean of the deseasonalised days (spend / factor), so a
               recent step change moves it within a few days while one odd day does not
    forecast   day d: level * factor[weekday(d)];  period end: spent so far + the days left

Why this and not more: daily spend of a gateway has a strong weekly shape (weekends are quiet),
a level that moves by steps (a team ships a feature, a key is retired) and rarely enough history
for a fitted model; a multiplicative weekday profile with a smoothed level is Holt-Winters without
the trend term, which on short, stepped series predicts better than extrapolating a fitted trend.
A slow trend is followed by the level with a lag. The interval comes from the one-day-ahead errors
over the history: each day's own error, plus the level's, which all days ahead share (80% by
default). It assumes the level holds: after a step or along a trend it is too narrow. Money goes
in and out as Decimal; the model itself works in floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

ALPHA = 0.3  # the level's weight on the newest day
FULL_WEEKS = 3  # a weekday seen this often counts fully; seen less, its factor is pulled toward 1
Z_80 = 1.2816
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Model:
    level: float
    factors: tuple[float, ...]  # Monday first
    sigma: float  # one day's forecast error, in dollars

    def day(self, day: date) -> float:
        return self.level * self.factors[day.weekday()]


@dataclass(frozen=True, slots=True)
class Projection:
    spent: Decimal
    projected: Decimal  # at the period's end
    low: Decimal
    high: Decimal
    budget: Decimal | None
    runs_out_on: date | None  # the first day the projected spend reaches the budget
    daily: list[tuple[date, Decimal]]  # the forecast for each day left

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.projected > self.budget


def fit(history: Sequence[tuple[date, Decimal]]) -> Model:
    """The model from consecutive days of spend (missing days count as zero spend)."""
    days = _filled(history)
    if not days:
        return Model(0.0, (1.0,) * 7, 0.0)
    values = [float(v) for _, v in days]
    mean = sum(values) / len(values)
    factors = [1.0] * 7
    if mean > 0:
        for weekday in range(7):
            seen = [v for (d, _), v in zip(days, values, strict=True) if d.weekday() == weekday]
            if seen:
                raw = (sum(seen) / len(seen)) / mean
                weight = min(1.0, len(seen) / FULL_WEEKS)
                factors[weekday] = weight * raw + (1 - weight) * 1.0
        norm = sum(factors) / 7
        factors = [f / norm for f in factors]
    level = values[0] / factors[days[0][0].weekday()] if factors[days[0][0].weekday()] > 0 else values[0]
    errors: list[float] = []
    for (day, _), value in zip(days[1:], values[1:], strict=True):
        factor = factors[day.weekday()]
        errors.append(value - level * factor)
        deseasonalised = value / factor if factor > 0 else value
        level = ALPHA * deseasonalised + (1 - ALPHA) * level
    sigma = math.sqrt(sum(e * e for e in errors) / len(errors)) if errors else 0.0
    return Model(level, tuple(factors), sigma)


def project(history: Sequence[tuple[date, Decimal]], spent: Decimal, today: date, period_end: date,
            budget: Decimal | None, z: float = Z_80) -> Projection:
    """From the history up to yesterday and `spent` so far in the period, the period's end.

    `period_end` is the period's last day (included); today counts as a day left, less what is spent
    today already is not known apart, so today's forecast is added in full (a slight overestimate
    early in the day, none at its end, since `spent` then holds it and history stops at yesterday).
    """
    model = fit([(d, v) for d, v in history if d < today])
    left = [today + timedelta(days=i) for i in range((period_end - today).days + 1)]
    daily = [(d, _money(model.day(d))) for d in left]
    projected = spent + sum((v for _, v in daily), Decimal(0))
    h = len(left)
    # Each day's own noise (h terms), plus the level's error, which every day ahead shares: an
    # exponentially weighted mean carries alpha / (2 - alpha) of one day's variance.
    spread = _money(z * model.sigma * math.sqrt(h + h * h * ALPHA / (2 - ALPHA))) if left else Decimal(0)
    runs_out_on = None
    if budget is not None:
        running = spent
        if running >= budget:
            runs_out_on = today
        else:
            for day, value in daily:
                running += value
                if running >= budget:
                    runs_out_on = day
                    break
    return Projection(spent, projected, max(spent, projected - spread), projected + spread, budget, runs_out_on,
                      daily)


def _filled(history: Sequence[tuple[date, Decimal]]) -> list[tuple[date, Decimal]]:
    if not history:
        return []
    by_day: dict[date, Decimal] = {}
    for day, value in history:
        by_day[day] = by_day.get(day, Decimal(0)) + value
    first, last = min(by_day), max(by_day)
    return [(first + timedelta(days=i), by_day.get(first + timedelta(days=i), Decimal(0)))
            for i in range((last - first).days + 1)]


def _money(value: float) -> Decimal:
    return Decimal(repr(max(0.0, value))).quantize(CENT, rounding=ROUND_HALF_UP)
