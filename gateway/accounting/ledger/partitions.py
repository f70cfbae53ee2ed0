"""Day partitions of `ledger_requests`: their names, bounds, and which to make or drop.

Pure functions; the SQL that runs them is in `gateway.accounting.ledger.postgres`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, timedelta

PARENT = "ledger_requests"
_NAME = re.compile(rf"^{PARENT}_p(\d{{4}})(\d{{2}})(\d{{2}})$")


def partition_name(day: date) -> str:
    return f"{PARENT}_p{day:%Y%m%d}"


def partition_day(name: str) -> date | None:
    """The day a partition holds, from its name; None for a table that is not one of ours."""
    match = _NAME.match(name)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def create_statement(day: date) -> str:
    # Bounds carry an explicit UTC offset, so the server's time zone cannot shift a day.
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF {PARENT} "
        f"FOR VALUES FROM ('{day.isoformat()} 00:00:00+00') TO ('{(day + timedelta(days=1)).isoformat()} 00:00:00+00')"
    )


def wanted(today: date, premake_days: int) -> list[date]:
    """Yesterday (late and replayed rows) through today + premake_days."""
    return [today + timedelta(days=offset) for offset in range(-1, premake_days + 1)]


def expired(existing: Iterable[date], today: date, retention_days: int) -> list[date]:
    """Days wholly older than the retention; a retention of 0 keeps everything."""
    if retention_days <= 0:
        return []
    oldest_kept = today - timedelta(days=retention_days)
    return sorted(day for day in existing if day < oldest_kept)
