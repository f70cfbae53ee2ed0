"""Recommendations from the ledger, each with the money at stake (gateway/accounting/recommend.py).

    GET /admin/api/recommendations?days=28&min_requests=100&max_error_rate_increase=0.01
                                  &max_latency_ratio=1.2&cache_ttl_s=3600&idle_weeks=4

Every criterion has its default; the answer repeats the ones it used.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from admin import params
from admin.api import by_method
from gateway.accounting.pricing import PriceBook
from gateway.accounting.recommend import Criteria, LiveKey, recommend
from gateway.config.file import Price
from gateway.core.errors import ModelNotFound
from gateway.edge.responses import json_response
from gateway.identity.store.sql import SqlStore
from gateway.routing.router import Router

PATH = "/admin/api/recommendations"
PAGE = 1000


class RecommendationsApi:
    def __init__(self, router: Router, prices: PriceBook, store: Callable[[], SqlStore], postgres: bool,
                 authorize: Callable[[Request], Awaitable[Any]]) -> None:
        self.router = router
        self.prices = prices
        self.store = store
        self.postgres = postgres
        self.authorize = authorize

    async def list(self, request: Request) -> Response:
        await self.authorize(request)
        d = Criteria()
        criteria = Criteria(
            days=params.REC_DAYS.get(request, d.days), min_requests=params.MIN_REQUESTS.get(request, d.min_requests),
            max_error_rate_increase=params.MAX_ERROR_RATE_INCREASE.get(request, d.max_error_rate_increase),
            max_latency_ratio=params.MAX_LATENCY_RATIO.get(request, d.max_latency_ratio),
            cache_ttl_s=params.CACHE_TTL.get(request, d.cache_ttl_s),
            idle_weeks=params.IDLE_WEEKS.get(request, d.idle_weeks),
        )
        now = datetime.now(UTC)
        store = self.store()
        found = await recommend(store.db, postgres=self.postgres, price_of=self.price_of,
                                keys=await live_keys(store, now), criteria=criteria, now=now)
        return json_response({
            "object": "recommendations", "start": (now - timedelta(days=criteria.days)).isoformat(),
            "end": now.isoformat(), "criteria": asdict(criteria),
            "total_usd": str(sum((r.money_usd for r in found), Decimal(0))), "data": [r.record() for r in found],
        })

    def price_of(self, model: str, deployment_id: str) -> Price | None:
        try:
            group = self.router.group(model)
        except ModelNotFound:
            return None
        served = next((d for d in group.deployments if d.id == deployment_id), None)
        return None if served is None else self.prices.price(served, group.name)


async def live_keys(store: SqlStore, now: datetime) -> list[LiveKey]:
    keys: list[LiveKey] = []
    after = None
    while True:
        page = await store.list_keys(include_revoked=False, after=after, limit=PAGE)
        keys += [LiveKey(k.id, k.name, k.limits.budget_usd,
                         None if k.limits.budget_period is None else k.limits.budget_period.value)
                 for k in page if k.expires_at is None or k.expires_at > now]
        if len(page) < PAGE:
            return keys
        after = page[-1].id


def recommendation_routes(api: RecommendationsApi) -> list[Route]:
    return [by_method(PATH, {"GET": api.list})]
