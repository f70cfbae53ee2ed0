"""What a call costs, in USD as `Decimal`.

Prices come from the deployment's own `price` in the config, else from the shipped table
(`gateway/accounting/prices.yaml`, keyed by provider and upstream model id). No price is not an
error: the cost is then unknown (None) and the caller counts a warning.
"""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from typing import Any

import yaml

from gateway.config.file import Deployment, ModelGroup, Price
from gateway.core.types import Usage

MILLION = Decimal(1_000_000)


def load_price_table(text: str | None = None) -> dict[str, Price]:
    if text is None:
        text = resources.files("gateway.accounting").joinpath("prices.yaml").read_text()
    raw: dict[str, Any] = yaml.safe_load(text)
    return {name: Price.model_validate(entry) for name, entry in (raw.get("prices") or {}).items()}


class PriceBook:
    def __init__(self, table: dict[str, Price]) -> None:
        self._table = table

    def price(self, deployment: Deployment, public_model: str) -> Price | None:
        if deployment.price is not None:
            return deployment.price
        model = deployment.model or public_model
        return self._table.get(f"{deployment.provider}/{model}") or self._table.get(model)

    def cost(self, deployment: Deployment, public_model: str, usage: Usage) -> Decimal | None:
        price = self.price(deployment, public_model)
        if price is None:
            return None
        return charge(price, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) + units_charge(
            price, usage)

    def cost_on(self, group: ModelGroup, usage: Usage) -> Decimal | None:
        """What `usage` would have cost on `group`: at its first deployment with a known price.

        The counterfactual of complexity routing (the same tokens, the top tier's price): an
        estimate, since a stronger model may well have written more, or fewer, tokens.
        """
        for deployment in group.deployments:
            cost = self.cost(deployment, group.name, usage)
            if cost is not None:
                return cost
        return None


def units_charge(price: Price, usage: Usage) -> Decimal:
    """What the non-token units of an answer cost: images, audio seconds, characters, searches."""
    if not (usage.images or usage.audio_seconds or usage.characters or usage.searches):
        return Decimal(0)
    per_image = price.per_image_by_size.get(usage.image_size or "", price.per_image)
    return (usage.images * per_image
            + usage.audio_seconds * price.per_audio_minute / 60
            + usage.characters * price.per_million_characters / MILLION
            + usage.searches * price.per_search)


def charge(price: Price, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> Decimal:
    # Cached tokens are counted inside prompt_tokens (OpenAI's convention, which adapters follow).
    cached = min(cached_tokens, prompt_tokens)
    cached_rate = price.cached_input_per_mtok if price.cached_input_per_mtok is not None else price.input_per_mtok
    return (
        (prompt_tokens - cached) * price.input_per_mtok
        + cached * cached_rate
        + completion_tokens * price.output_per_mtok
    ) / MILLION + price.per_request
