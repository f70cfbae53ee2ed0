"""Overview: spend today and this month, requests, error rate, latency, top teams and models."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from starlette.responses import Response

from admin.ui import charts, formats
from admin.ui.usage import Latency, Usage, answered, midnight, today
from admin.ui.web import Ui, Visit

TOP = 6
DAYS = 30


class Overview:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui

    async def show(self, visit: Visit) -> Response:
        usage = Usage(self.ui.backend, visit.session)
        day = today()
        month = day.replace(day=1)
        first = day - timedelta(days=DAYS - 1)
        day_total, month_total, by_day, by_team, by_model, rows, teams = await asyncio.gather(
            usage.total(day, day),
            usage.total(month, day),
            usage.grouped(first, day, "day"),
            usage.grouped(month, day, "team"),
            usage.grouped(month, day, "model"),
            usage.recent_rows(midnight(day)),
            self.ui.backend.get(visit.session, self.ui.backend.admin.list_teams, {"limit": 1000}),
        )
        names = {t["id"]: t["name"] for t in teams["data"]}
        top_teams = sorted(by_team.items(), key=lambda item: item[1].cost_usd, reverse=True)[:TOP]
        top_models = sorted(by_model.items(), key=lambda item: item[1].cost_usd, reverse=True)[:TOP]
        days = [(first + timedelta(days=i)).isoformat() for i in range(DAYS)]
        latency = Latency.of([float(r["latency_ms"]) for r in answered(rows)])
        return self.ui.show(
            visit, "overview.html",
            day=day, month=month, today=day_total, this_month=month_total, latency=latency,
            daily_chart=charts.columns([(d, by_day[d].cost_usd if d in by_day else 0) for d in days], formats.usd,
                                       title=f"Spend per day, last {DAYS} days"),
            requests_chart=charts.columns([(d, by_day[d].requests if d in by_day else 0) for d in days],
                                          formats.count, title=f"Requests per day, last {DAYS} days"),
            teams_chart=charts.bars([(names.get(t or "", t or "(no team)"), v.cost_usd) for t, v in top_teams],
                                    formats.usd, title="Top teams by spend this month"),
            models_chart=charts.bars([(m or "(none)", v.cost_usd) for m, v in top_models], formats.usd,
                                     title="Top models by spend this month"),
            top_teams=[(t, names.get(t or "", t or "(no team)"), v) for t, v in top_teams],
            top_models=top_models,
        )
