"""A `complexity` model's spend by tier, and what sending everything to its top tier would have cost.

    GET /admin/api/routing/complexity?model=auto&start=YYYY-MM-DD&end=YYYY-MM-DD

Per tier: requests, tokens, the recorded cost, the mean score, and `top_tier_cost_usd`: the same
tokens priced at the top tier's first deployment. The saving is the difference of the totals. It is
an estimate in one respect: a larger model would not have written the same number of tokens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from admin import params
from admin.api import by_method
from gateway.accounting.ledger.tiers import TierTotals, by_tier
from gateway.accounting.pricing import PriceBook, charge
from gateway.config.file import Price
from gateway.core.errors import InvalidRequest
from gateway.edge.responses import json_response
from gateway.identity.store.sql import Database
from gateway.routing.router import Router

PATH = "/admin/api/routing/complexity"
DEFAULT_DAYS = 30


class ComplexityApi:
    def __init__(self, router: Router, prices: PriceBook, db: Callable[[], Database], postgres: bool,
                 authorize: Callable[[Request], Awaitable[Any]]) -> None:
        self.router = router
        self.prices = prices
        self.db = db
        self.postgres = postgres
        self.authorize = authorize

    async def report(self, request: Request) -> Response:
        await self.authorize(request)
        name = params.COMPLEXITY_MODEL.need(request)
        tiered = complexity_models(self.router)
        if name not in tiered:
            raise InvalidRequest(f"'model' must name a complexity model (configured: {', '.join(tiered) or 'none'}).",
                                 param="model")
        group = self.router.group(name)
        assert group.complexity is not None
        start, end = params.day_range(request, DEFAULT_DAYS)
        top = group.complexity.tiers[-1]
        top_group = self.router.group(top.model)
        price = self.prices.price(top_group.deployments[0], top_group.name) if top_group.deployments else None
        tiers = await by_tier(self.db(), name, start, end, postgres=self.postgres)
        data = [_view(t, _at_price(price, t)) for t in tiers]
        cost = sum((t.cost_usd for t in tiers), Decimal(0))
        top_cost = None if price is None else sum((_at_price(price, t) or Decimal(0) for t in tiers), Decimal(0))
        return json_response({
            "object": "complexity_report", "model": name, "start": start.isoformat(),
            "end": params.LAST_DAY.get(request, end).isoformat(), "top_tier": top.name,
            "tiers": [t.name for t in group.complexity.tiers], "data": data,
            "total": {"requests": sum(t.requests for t in tiers), "cost_usd": str(cost),
                      "top_tier_cost_usd": None if top_cost is None else str(top_cost),
                      "saved_usd": None if top_cost is None else str(top_cost - cost)},
        })


def complexity_models(router: Router) -> list[str]:
    return [g.name for g in router.groups if g.complexity is not None]


def _at_price(price: Price | None, t: TierTotals) -> Decimal | None:
    if price is None or t.requests == 0:
        return None
    # charge() adds the per-request price once; the group had `requests` of them.
    return charge(price, t.prompt_tokens, t.completion_tokens, t.cached_tokens) + price.per_request * (t.requests - 1)


def _view(t: TierTotals, top_cost: Decimal | None) -> dict[str, Any]:
    return {"tier": t.tier, "requests": t.requests, "prompt_tokens": t.prompt_tokens,
            "completion_tokens": t.completion_tokens, "cached_tokens": t.cached_tokens, "cost_usd": str(t.cost_usd),
            "unpriced": t.unpriced, "mean_score": t.mean_score,
            "top_tier_cost_usd": None if top_cost is None else str(top_cost)}


def complexity_routes(api: ComplexityApi) -> list[Route]:
    return [by_method(PATH, {"GET": api.report})]
