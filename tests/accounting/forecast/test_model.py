"""The forecast against synthetic ledgers whose future is known: seasonality, a trend, a step change, noise."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import pytest

from gateway.accounting.forecast import fit, project

START = date(2026, 1, 5)  # a Monday
WEEK = (1.2, 1.3, 1.25, 1.2, 1.1, 0.45, 0.5)  # busy weekdays, quiet weekends


def series(days: int, daily: float = 100.0, *, trend: float = 0.0, step_at: int | None = None, step: float = 1.0,
           noise: float = 0.0, seed: int = 7) -> list[tuple[date, Decimal]]:
    rng = random.Random(seed)
    out = []
    for i in range(days):
        day = START + timedelta(days=i)
        level = daily * (1 + trend * i) * (step if step_at is not None and i >= step_at else 1.0)
        value = level * WEEK[day.weekday()] * (1 + rng.gauss(0, noise))
        out.append((day, Decimal(str(round(max(0.0, value), 2)))))
    return out


def error_of(history_days: int, horizon: int, **shape: float) -> tuple[float, Decimal, Decimal, Decimal]:
    """Relative error of the projected total over `horizon` days, and the projection's interval and truth."""
    full = series(history_days + horizon, **shape)  # type: ignore[arg-type]
    history, future = full[:history_days], full[history_days:]
    today, end = future[0][0], future[-1][0]
    p = project(history, Decimal(0), today, end, None)
    truth = sum((v for _, v in future), Decimal(0))
    return abs(float(p.projected - truth)) / float(truth), p.low, p.high, truth


def test_weekday_factors_are_learnt_from_the_history() -> None:
    model = fit(series(56))
    assert model.factors[5] < 0.6 < model.factors[1]  # Saturday quiet, Tuesday busy
    assert model.factors[1] / model.factors[5] == pytest.approx(1.3 / 0.45, rel=0.15)


@pytest.mark.parametrize("name, shape, bound", [
    ("flat, weekly seasonality", {}, 0.01),
    ("seasonality and 5% noise", {"noise": 0.05}, 0.05),
    ("a slow trend, +0.5% a day", {"trend": 0.005, "noise": 0.03}, 0.12),
    ("a step up to 2x, 10 days before", {"step_at": 46, "step": 2.0, "noise": 0.03}, 0.12),
])
def test_projection_error_is_bounded(name: str, shape: dict[str, float], bound: float) -> None:
    err, low, high, truth = error_of(56, 28, **shape)
    print(f"{name}: relative error of the 28-day total {err:.3%}")
    assert err < bound
    if set(shape) == {"noise"}:
        # Around a steady level the interval covers the truth; after a trend or a step it is too
        # narrow (the level lags), which the docs say.
        assert low <= truth <= high


def test_seasonality_matters_a_naive_mean_misses_what_the_model_catches() -> None:
    # Forecasting the rest of a week that starts on Saturday: a plain mean overshoots the weekend.
    history = series(35)
    saturday = START + timedelta(days=40)
    p = project(history + series(40)[35:40], Decimal(0), saturday, saturday + timedelta(days=1), None)
    naive = sum(float(v) for _, v in history) / len(history) * 2
    truth = 100 * (WEEK[5] + WEEK[6])
    assert abs(float(p.projected) - truth) < 0.05 * truth < abs(naive - truth)


def test_the_run_out_date_and_the_overspend_flag() -> None:
    history = series(28)  # ~100 a day on average, weekdays ~120
    today = START + timedelta(days=28)  # a Monday
    p = project(history, Decimal(500), today, today + timedelta(days=6), Decimal(900))
    assert p.over_budget and p.runs_out_on is not None
    spent, ran_out = Decimal(500), None
    for day, value in p.daily:
        spent += value
        if spent >= 900:
            ran_out = day
            break
    assert p.runs_out_on == ran_out and p.runs_out_on < today + timedelta(days=6)
    easy = project(history, Decimal(0), today, today + timedelta(days=6), Decimal(10_000))
    assert not easy.over_budget and easy.runs_out_on is None
    spent_already = project(history, Decimal(2000), today, today, Decimal(1000))
    assert spent_already.runs_out_on == today


def test_no_history_forecasts_nothing_and_missing_days_count_as_zero() -> None:
    p = project([], Decimal(3), date(2026, 3, 2), date(2026, 3, 8), Decimal(10))
    assert p.projected == Decimal(3) and p.runs_out_on is None
    gappy = [(START, Decimal(70)), (START + timedelta(days=6), Decimal(70))]
    assert fit(gappy).level < 70  # the five empty days between pulled the level down
