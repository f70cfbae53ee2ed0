"""The cost ledger: one row per request, queued on the request path and written in batches.

    row.py        the row, built from a finished request's RequestRecord
    labels.py     what a client attaches: the `user` field and x-gateway-tags
    writer.py     the Recorder: queue, background writer, spill and replay, shutdown
    spill.py      append-only spill files for rows the database cannot take yet
    journal.py    the durable mode: rows fsynced locally before their answer completes
    sink.py       what a database behind the writer does (Postgres, SQLite)
    postgres.py   COPY into day partitions + the per-day rollup, idempotent for replays
    sqlite.py     the same rows for the embedded default
    rollup.py     a batch's per-day totals
    partitions.py day partitions: names, what to create ahead and what retention drops
    queries.py    spend (from the rollup) and raw rows (keyset-paginated) for the admin API
    command.py    `gateway db maintain`
"""

from __future__ import annotations

from pathlib import Path

from gateway.accounting.ledger.journal import Journal
from gateway.accounting.ledger.postgres import PostgresSink
from gateway.accounting.ledger.queries import LedgerQueries, PostgresQueries, SQLiteQueries
from gateway.accounting.ledger.sink import Sink
from gateway.accounting.ledger.spill import Spill
from gateway.accounting.ledger.sqlite import SQLiteSink
from gateway.accounting.ledger.writer import Ledger, LedgerOptions
from gateway.config.settings import Settings
from gateway.db.connect import postgres_dsn, sqlite_path

SPILL_DIR = "ledger-spill"
JOURNAL_DIR = "ledger-journal"

__all__ = ["Ledger", "LedgerOptions", "build_ledger", "build_queries", "build_sink"]


def build_sink(settings: Settings) -> Sink:
    dsn = postgres_dsn(settings)
    if dsn is None:
        return SQLiteSink(sqlite_path(settings), retention_days=settings.ledger_retention_days)
    return PostgresSink(
        dsn, premake_days=settings.ledger_premake_days, retention_days=settings.ledger_retention_days
    )


def build_ledger(settings: Settings) -> Ledger:
    options = LedgerOptions(
        queue_size=settings.ledger_queue_size,
        batch_size=settings.ledger_batch_size,
        flush_s=settings.ledger_flush_s,
        write_timeout_s=settings.ledger_write_timeout_s,
        retry_max_s=settings.ledger_retry_max_s,
        maintain_every_s=settings.ledger_maintain_every_s,
        shutdown_s=settings.ledger_shutdown_s,
    )
    data = Path(settings.data_dir)
    journal = Journal(data / JOURNAL_DIR) if settings.ledger_durable else None
    return Ledger(build_sink(settings), Spill(data / SPILL_DIR), options, journal=journal)


def build_queries(settings: Settings) -> LedgerQueries:
    dsn = postgres_dsn(settings)
    return SQLiteQueries(sqlite_path(settings)) if dsn is None else PostgresQueries(dsn)
