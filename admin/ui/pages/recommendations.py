"""Recommendations: cheaper deployments, repeats a cache would answer and idle keys, the most money first."""

from __future__ import annotations

from starlette.responses import Response

from admin.recommendations_api import RecommendationsApi
from admin.ui.forms import Feedback
from admin.ui.web import Ui, Visit
from gateway.core.errors import GatewayError

CRITERIA = ("days", "min_requests", "max_error_rate_increase", "max_latency_ratio", "cache_ttl_s", "idle_weeks")


class Recommendations:
    def __init__(self, ui: Ui, api: RecommendationsApi) -> None:
        self.ui = ui
        self.api = api

    async def show(self, visit: Visit) -> Response:
        query = {name: visit.request.query_params.get(name) for name in CRITERIA}
        try:
            found = await self.ui.backend.get(visit.session, self.api.list, query)
        except GatewayError as exc:
            feedback = Feedback.of(exc)
            found = await self.ui.backend.get(visit.session, self.api.list)
            return self.ui.show(visit, "recommendations.html", feedback.status, found=found, feedback=feedback)
        return self.ui.show(visit, "recommendations.html", found=found, feedback=None)
