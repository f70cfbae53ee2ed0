"""Rate limits and budgets: built once from the config and settings, handed to the proxy as its `Admission`.

With `redis_url` set the limits live in Redis and hold across workers and replicas; without it
they run in-process (memory.py) with the same semantics, per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from gateway.accounting.limits.checks import Backend
from gateway.accounting.limits.limiter import Limiter, LimiterOptions, LimiterStats, Reservation
from gateway.accounting.limits.memory import MemoryBackend
from gateway.accounting.limits.redis_backend import CLUSTER_RECHECK_S, RedisBackend
from gateway.accounting.limits.resp import UnsupportedOption
from gateway.accounting.pricing import PriceBook
from gateway.config.file import Config, ConfigError, ModelGroup, Price
from gateway.config.settings import Settings
from gateway.core.types import BudgetPeriod, Limits

__all__ = ["Limiter", "LimiterOptions", "LimiterStats", "Reservation", "build_limiter"]


def build_limiter(
    config: Config,
    settings: Settings,
    prices: PriceBook,
    *,
    clock: Callable[[], float] = time.time,
    group_name: Callable[[str], str] | None = None,
) -> Limiter:
    options = LimiterOptions(
        prefix=settings.redis_prefix,
        timezone=ZoneInfo(settings.limits_timezone),
        default_output_tokens=settings.limits_default_output_tokens,
        lease_s=settings.limits_lease_s,
        failure_mode=settings.limits_failure_mode,
        recheck_s=recheck_s(settings),
    )
    backend: Backend
    fallback: Backend | None = None
    if settings.redis_url is None:
        backend = MemoryBackend()
    else:
        timeout = settings.limits_redis_timeout_s
        try:
            backend = RedisBackend(settings.redis_url.get_secret_value(), timeout_s=timeout,
                                   cluster=settings.redis_cluster)  # fmt: skip
        except UnsupportedOption as exc:
            raise ConfigError(f"config error: settings.redis_url: {exc}") from None
        except ValueError:
            # The parser's message may quote a piece of the URL, password included.
            raise ConfigError("config error: settings.redis_url: not a valid Redis URL") from None
        if settings.limits_failure_mode == "open":
            fallback = MemoryBackend()
    return Limiter(
        backend,
        options=options,
        model_limits={g.name: model_limits(g) for g in config.models if g.limits is not None},
        model_prices={g.name: p for g in config.models if (p := estimate_price(prices, g)) is not None},
        fallback=fallback,
        clock=clock,
        group_name=group_name,
    )


def recheck_s(settings: Settings) -> float:
    """How long the failure mode lasts before Redis is asked again. A cluster heals itself (a
    replica takes over a failed master's slots), so there the limiter asks again soon enough to
    notice the takeover within CLUSTER_RECHECK_S."""
    if settings.redis_url is not None and settings.redis_cluster:
        return min(settings.limits_redis_recheck_s, CLUSTER_RECHECK_S)
    return settings.limits_redis_recheck_s


def model_limits(group: ModelGroup) -> Limits:
    caps = group.limits
    assert caps is not None
    period = BudgetPeriod(caps.budget_period) if caps.budget_period else None
    return Limits(caps.rpm, caps.tpm, caps.max_parallel, caps.budget_usd, period)


def estimate_price(prices: PriceBook, group: ModelGroup) -> Price | None:
    """The dearest of the group's deployments, rate by rate: the router may pick any of them."""
    known = [p for d in group.deployments if (p := prices.price(d, group.name)) is not None]
    if not known:
        return None
    sizes = {size for p in known for size in p.per_image_by_size}
    return Price(
        input_per_mtok=max(p.input_per_mtok for p in known),
        output_per_mtok=max(p.output_per_mtok for p in known),
        per_request=max(p.per_request for p in known),
        per_image=max(p.per_image for p in known),
        per_image_by_size={size: max(p.per_image_by_size.get(size, p.per_image) for p in known) for size in sizes},
        per_audio_minute=max(p.per_audio_minute for p in known),
        per_million_characters=max(p.per_million_characters for p in known),
        per_search=max(p.per_search for p in known),
    )
