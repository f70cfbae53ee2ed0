"""`gateway db maintain --config FILE`: make the ledger's partitions ahead and apply retention, once.

The gateway does the same at start and every `ledger_maintain_every_s`; this is for cron jobs
and for operators who changed the retention and want it applied now.
"""

from __future__ import annotations

import asyncio
import sys

from gateway.accounting.ledger import build_sink
from gateway.accounting.ledger.sink import Maintenance, SinkUnavailable
from gateway.accounting.ledger.writer import utc_today
from gateway.config.file import ConfigError, KnownProviders, load_config
from gateway.config.settings import Settings
from gateway.db.connect import DatabaseUrlError


def maintain_command(config_path: str, known_providers: KnownProviders) -> int:
    try:
        _, settings = load_config(config_path, known_providers)
        report = asyncio.run(_maintain(settings))
    except (ConfigError, DatabaseUrlError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except SinkUnavailable as exc:
        print(f"gateway db maintain: {exc}", file=sys.stderr)
        return 1
    for name in report.created:
        print(f"created {name}")
    for name in report.dropped:
        print(f"dropped {name}")
    if report.deleted_rows:
        print(f"deleted {report.deleted_rows} rows past the retention of {settings.ledger_retention_days} days")
    if not (report.created or report.dropped or report.deleted_rows):
        print("ledger: nothing to do")
    return 0


async def _maintain(settings: Settings) -> Maintenance:
    sink = build_sink(settings)
    await sink.open()
    try:
        return await sink.maintain(utc_today())
    finally:
        await sink.close()
