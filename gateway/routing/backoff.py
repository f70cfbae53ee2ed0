"""How long to wait before trying a deployment again."""

from __future__ import annotations

import random

from gateway.config.routing import RoutingOptions

# A 429 that names no retry-after still keeps the deployment aside this long.
RATE_LIMIT_COOL_S = 1.0


def backoff_s(retry: int, options: RoutingOptions, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: half of the step is fixed, half random, so clients
    that failed together do not come back together, and no wait is close to zero."""
    step = min(options.backoff_max_s, options.backoff_base_s * 2 ** max(0, retry - 1))
    return step / 2 + rng.random() * step / 2


def cool_down_s(retry_after: float | None, options: RoutingOptions) -> float:
    """How long a deployment that answered 429 (or 503 with retry-after) is left alone."""
    wanted = RATE_LIMIT_COOL_S if retry_after is None else retry_after
    return min(wanted, options.max_retry_after_s)
