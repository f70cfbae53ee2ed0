"""Overview: spend today and this month, requests, error rate, latency, top teams, models and keys.

The charts and top lists cover a range of UTC days the page's form may choose (`start`, `end`);
without one, the day charts show the last 30 days and the top lists this month.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta

from starlette.datastructures import QueryParams
from starlette.responses import Response

from admin.ui import charts, formats
from admin.ui.forms import Feedback
from admin.ui.usage import Latency, Totals, Usage, answered, midnight, today
from admin.ui.web import Ui, Visit
from gateway.core.errors import InvalidRequest

TOP = 6
DAYS = 30
# One column per day: past a year the columns are thinner than a pixel.
MAX_DAYS = 366


@dataclass(frozen=True, slots=True)
class Range:
    """The days the day charts cover, and those the top lists cover."""

    first: date
    last: date
    top_first: date
    chosen: bool

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def top_title(self, what: str) -> str:
        if not self.chosen:
            return f"{what} this month"
        return f"{what}, {self.first.isoformat()} to {self.last.isoformat()}"

    def day_title(self, what: str) -> str:
        if not self.chosen:
            return f"{what} per day, last {DAYS} days"
        return f"{what} per day, {self.first.isoformat()} to {self.last.isoformat()}"


def default_range(day: date) -> Range:
    return Range(day - timedelta(days=DAYS - 1), day, day.replace(day=1), chosen=False)


def chosen_range(query: QueryParams, day: date) -> Range:
    """The form's `start` and `end` (either may be left empty), checked; no form: the default range."""
    raw_start, raw_end = query.get("start", "").strip(), query.get("end", "").strip()
    if not raw_start and not raw_end:
        return default_range(day)
    end = _day(raw_end, "end") if raw_end else day
    start = _day(raw_start, "start") if raw_start else end - timedelta(days=DAYS - 1)
    if start > end:
        raise InvalidRequest("'From' must not be after 'To'.", param="start")
    if end > day:
        raise InvalidRequest(f"'To' must not be after today ({day.isoformat()}, UTC).", param="end")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidRequest(f"The range may span at most {MAX_DAYS} days.", param="start")
    return Range(start, end, start, chosen=True)


def _day(raw: str, name: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"Invalid value for '{name}': a date as YYYY-MM-DD.", param=name) from None


class Overview:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui

    async def show(self, visit: Visit) -> Response:
        usage, backend = Usage(self.ui.backend, visit.session), self.ui.backend
        day = today()
        feedback = None
        try:
            span = chosen_range(visit.request.query_params, day)
        except InvalidRequest as exc:
            feedback, span = Feedback.of(exc), default_range(day)
        month = day.replace(day=1)
        day_total, month_total, by_day, by_team, by_model, by_key, rows, teams, keys = await asyncio.gather(
            usage.total(day, day),
            usage.total(month, day),
            usage.grouped(span.first, span.last, "day"),
            usage.grouped(span.top_first, span.last, "team"),
            usage.grouped(span.top_first, span.last, "model"),
            usage.grouped(span.top_first, span.last, "key"),
            usage.recent_rows(midnight(day)),
            backend.get(visit.session, backend.admin.list_teams, {"limit": 1000}),
            backend.get(visit.session, backend.admin.list_keys, {"limit": 1000, "include_revoked": "true"}),
        )
        team_names = {t["id"]: t["name"] for t in teams["data"]}
        key_names = {k["id"]: f"{k['name'] or k['id']} ({k['prefix']}…)" for k in keys["data"]}
        top_teams, top_models, top_keys = (_top(by_team), _top(by_model), _top(by_key))
        days = [d.isoformat() for d in span.days]
        latency = Latency.of([float(r["latency_ms"]) for r in answered(rows)])
        return self.ui.show(
            visit, "overview.html", feedback.status if feedback else 200,
            day=day, month=month, today=day_total, this_month=month_total, latency=latency, span=span,
            form={"start": visit.request.query_params.get("start", ""),
                  "end": visit.request.query_params.get("end", "")} if feedback or span.chosen else {},
            feedback=feedback,
            daily_chart=charts.columns([(d, by_day[d].cost_usd if d in by_day else 0) for d in days], formats.usd,
                                       title=span.day_title("Spend")),
            requests_chart=charts.columns([(d, by_day[d].requests if d in by_day else 0) for d in days],
                                          formats.count, title=span.day_title("Requests")),
            teams_chart=charts.bars([(team_names.get(t or "", t or "(no team)"), v.cost_usd) for t, v in top_teams],
                                    formats.usd, title=span.top_title("Top teams by spend")),
            models_chart=charts.bars([(m or "(none)", v.cost_usd) for m, v in top_models], formats.usd,
                                     title=span.top_title("Top models by spend")),
            keys_chart=charts.bars([(key_names.get(k or "", k or "(no key)"), v.cost_usd) for k, v in top_keys],
                                   formats.usd, title=span.top_title("Top keys by spend")),
            top_teams=[(t, team_names.get(t or "", t or "(no team)"), v) for t, v in top_teams],
            top_models=top_models,
            top_keys=[(k, key_names.get(k or "", k or "(no key)"), v) for k, v in top_keys],
        )


def _top(groups: dict[str | None, Totals]) -> list[tuple[str | None, Totals]]:
    """The biggest spenders first; among equals (a free model), the busiest."""
    return sorted(groups.items(), key=lambda item: (item[1].cost_usd, item[1].requests), reverse=True)[:TOP]
