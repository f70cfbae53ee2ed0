"""What the ledger tests share: reading Postgres from sync tests, waiting for rows, a private server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from gateway.accounting.pricing import charge
from gateway.config.file import Price
from gateway.db.connect import open_sqlite
from gateway.db.migrate import migrate_postgres, migrate_sqlite
from tests.procs import free_port

T = TypeVar("T")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# Waiting for the writer is not a speed check: a row that never comes fails the test here.
ROW_WAIT_S = 30.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from a sync test, on a thread with its own loop."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coro).result()


async def _fetch(dsn: str, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn, timeout=10)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def fetch(dsn: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    return run(_fetch(dsn, sql, args))


def migrate_sqlite_file(path: Path) -> None:
    conn = open_sqlite(path)
    try:
        migrate_sqlite(conn)
    finally:
        conn.close()


def migrate(dsn: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await migrate_postgres(conn)
        finally:
            await conn.close()

    run(go())


def wait_for(check: Callable[[], T], what: str, seconds: float = ROW_WAIT_S) -> T:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def rows_by_id(dsn: str, request_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    ids = list(request_ids)
    found: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for row in fetch(dsn, "SELECT * FROM ledger_requests WHERE request_id = ANY($1::text[])", ids):
        found[row["request_id"]].append(row)
    return found


def wait_rows(dsn: str, request_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each request's one row, once every one has arrived; fails if any request has two."""
    ids = list(request_ids)

    def complete() -> dict[str, list[dict[str, Any]]] | None:
        found = rows_by_id(dsn, ids)
        return found if all(found.values()) else None

    found = wait_for(complete, f"rows of {ids}")
    doubled = {i: len(rows) for i, rows in found.items() if len(rows) != 1}
    assert not doubled, f"requests with more than one row: {doubled}"
    return {i: rows[0] for i, rows in found.items()}


def cost(price: dict[str, str], prompt: int, completion: int, cached: int = 0) -> Decimal:
    return charge(Price.model_validate(price), prompt, completion, cached)


class PrivatePostgres:
    """A PostgreSQL server of the test's own (initdb in a temp dir), to stop and start at will."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gw-pg-"))
        self.port = free_port()
        self.data = self.dir / "data"
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/ledger"
        # initdb refuses to run as root: the server then runs as the postgres user.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.dir, "postgres")
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.start()
        run(self._create())

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run([*self._as, str(PG_BIN / tool), *args], check=True, stdout=subprocess.DEVNULL)

    async def _create(self) -> None:
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", timeout=10)
        try:
            await conn.execute("CREATE DATABASE ledger")
        finally:
            await conn.close()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

