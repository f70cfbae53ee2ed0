"""What a call costs, and what it would have cost on another group (complexity routing's counterfactual)."""

from __future__ import annotations

from decimal import Decimal

from gateway.accounting.pricing import PriceBook
from gateway.config.file import ModelGroup
from gateway.core.types import Usage


def test_a_group_is_priced_at_its_first_deployment_with_a_price() -> None:
    group = ModelGroup.model_validate({"name": "large", "deployments": [
        {"provider": "openai", "base_url": "http://a/v1", "model": "no-price-anywhere"},
        {"provider": "openai", "base_url": "http://b/v1", "model": "x",
         "price": {"input_per_mtok": "10", "output_per_mtok": "40"}}]})
    usage = Usage(prompt_tokens=1000, completion_tokens=500)
    assert PriceBook({}).cost_on(group, usage) == Decimal("0.03")
    unpriced = ModelGroup.model_validate({"name": "u", "deployments": [group.deployments[0]]})
    assert PriceBook({}).cost_on(unpriced, usage) is None
