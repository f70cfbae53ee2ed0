"""Forecasts: every budget with a period, where it is projected to end, and when it runs out."""

from __future__ import annotations

from starlette.responses import Response

from admin.forecast_api import ForecastApi
from admin.ui.forecast_chart import forecast_chart
from admin.ui.web import Ui, Visit


class Forecasts:
    def __init__(self, ui: Ui, api: ForecastApi) -> None:
        self.ui = ui
        self.api = api

    async def show(self, visit: Visit) -> Response:
        found = (await self.ui.backend.get(visit.session, self.api.list))["data"]
        return self.ui.show(visit, "forecasts.html", forecasts=[(f, forecast_chart(f)) for f in found])
