"""Budget forecasts under /admin/api/forecasts: every team and key with a budget period.

    GET /admin/api/forecasts     [{scope, id, name, period, budget_usd, spent_usd, projected_usd,
                                   low_usd, high_usd, runs_out_on, history, forecast}, ...]

The method (a weekday profile times a smoothed level) is gateway/accounting/forecast.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from admin.api import by_method
from gateway.accounting.forecasts import Forecasts
from gateway.edge.responses import json_response

PATH = "/admin/api/forecasts"


class ForecastApi:
    def __init__(self, forecasts: Forecasts, authorize: Callable[[Request], Awaitable[Any]]) -> None:
        self.forecasts = forecasts
        self.authorize = authorize

    async def list(self, request: Request) -> Response:
        await self.authorize(request)
        found = await self.forecasts.all()
        found.sort(key=lambda f: (not f.record()["runs_out_before_period_end"], f.scope, f.name))
        return json_response({"object": "list", "data": [f.record() for f in found]})


def forecast_routes(api: ForecastApi) -> list[Route]:
    return [by_method(PATH, {"GET": api.list})]
