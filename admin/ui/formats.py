"""How numbers, money and times read on the pages (the templates' filters)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import orjson

CENT = Decimal("0.01")
MICRO_USD = Decimal("0.000001")


def decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def usd(value: Any) -> str:
    """Every amount of money on every page: dollars with cents, and under a cent the micro-dollars
    ($0.000042), the unit the limiter counts in; never more places, so one amount always reads the
    same whichever page and source show it."""
    amount = decimal(value)
    if amount is None:
        return "—"
    if amount == 0:
        return "$0.00"
    sign, size = ("-" if amount < 0 else ""), abs(amount)
    if size >= CENT:
        return f"{sign}${size.quantize(CENT, ROUND_HALF_UP):,.2f}"
    micro = size.quantize(MICRO_USD, ROUND_HALF_UP)
    if micro == 0:
        return "< $0.000001" if amount > 0 else "> -$0.000001"
    return f"{sign}$" + format(micro.normalize(), "f")


def key_status(key: Mapping[str, Any], now: datetime | None = None) -> str:
    """`revoked`, `expired`, `expires` (an expiry still ahead) or `active`: an API key record's state."""
    if key.get("revoked"):
        return "revoked"
    expires = key.get("expires_at")
    if not expires:
        return "active"
    moment = expires if isinstance(expires, datetime) else datetime.fromisoformat(str(expires))
    if moment.tzinfo is None:  # the API's times are UTC
        moment = moment.replace(tzinfo=UTC)
    return "expired" if moment <= (now or datetime.now(UTC)) else "expires"


def ms(value: Any) -> str:
    if value is None:
        return "—"
    number = float(value)
    return f"{number / 1000:.2f} s" if number >= 10_000 else f"{number:.0f} ms"


def pct(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


def count(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def when(value: Any) -> str:
    """An ISO-8601 time as UTC, to the second."""
    if not value:
        return "—"
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def limit(value: Any) -> str:
    return "no cap" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest rank: the smallest value with at least `share` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]
