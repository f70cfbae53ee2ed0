"""Numbered SQL migrations, applied in order and recorded in `schema_migrations`.

Files are `migrations/<dialect>/NNNN_name.sql`. Each runs in its own transaction together with
the row that records it, so a failing migration leaves the schema as it was and is retried
at the next start. Several processes may start at once: on Postgres an advisory lock
serialises them, on SQLite the write lock (BEGIN IMMEDIATE) does, and each migration is
checked again under the lock before it runs.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from gateway.db.connect import PgConnection

log = logging.getLogger("gateway.db")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any fixed 64-bit number; every gateway process takes the same one.
_PG_LOCK_KEY = int.from_bytes(hashlib.sha256(b"gateway.schema_migrations").digest()[:8], "big", signed=True)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at {timestamp} NOT NULL DEFAULT CURRENT_TIMESTAMP
)
"""


class MigrationError(Exception):
    """One line: which file failed and why."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def file(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path) -> list[Migration]:
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: a migration file must be named NNNN_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"{path}: version {version} is used by {migrations[version].file} too")
        migrations[version] = Migration(version, match.group(2), path.read_text())
    return [migrations[v] for v in sorted(migrations)]


def _check_unchanged(migration: Migration, recorded_checksum: str) -> None:
    if recorded_checksum != migration.checksum:
        # Not fatal: a comment may have been fixed. But an edited migration never runs again.
        log.warning("migration %s was edited after it was applied; the edit has no effect", migration.file)


async def migrate_postgres(conn: PgConnection, directory: Path | None = None) -> list[str]:
    """Apply what is pending; return the files applied now."""
    migrations = load_migrations(directory or MIGRATIONS_DIR / "postgres")
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _PG_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE.format(timestamp="TIMESTAMPTZ"))
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        recorded = {r["version"]: r["checksum"] for r in rows}
        for migration in migrations:
            if migration.version in recorded:
                _check_unchanged(migration, recorded[migration.version])
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        migration.version, migration.name, migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration {migration.file} failed and was rolled back: {exc}") from None
            log.info("applied migration %s", migration.file)
            applied_now.append(migration.file)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _PG_LOCK_KEY)
    return applied_now


def migrate_sqlite(conn: sqlite3.Connection, directory: Path | None = None) -> list[str]:
    """Apply what is pending on a connection opened with isolation_level=None."""
    migrations = load_migrations(directory or MIGRATIONS_DIR / "sqlite")
    conn.execute(_CREATE_TABLE.format(timestamp="TEXT"))
    applied_now: list[str] = []
    for migration in migrations:
        statements = split_statements(migration)
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT checksum FROM schema_migrations WHERE version = ?", (migration.version,)
            ).fetchone()
            if row is not None:
                conn.execute("COMMIT")
                _check_unchanged(migration, row[0])
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)",
                (migration.version, migration.name, migration.checksum),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise MigrationError(f"migration {migration.file} failed and was rolled back: {exc}") from None
        log.info("applied migration %s", migration.file)
        applied_now.append(migration.file)
    return applied_now


def split_statements(migration: Migration) -> list[str]:
    """SQLite runs one statement per call (executescript would commit our transaction)."""
    sql = migration.sql
    statements: list[str] = []
    start = 0
    for i, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[start : i + 1]):
            statements.append(sql[start : i + 1].strip())
            start = i + 1
    if _strip_comments(sql[start:]):
        raise MigrationError(f"migration {migration.file}: the last statement does not end with ';'")
    return [s for s in statements if _strip_comments(s) not in ("", ";")]


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines()).strip()
