"""The migration runner on PostgreSQL and SQLite: order, records, re-runs, failures, concurrency."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
import yaml

from gateway.db.connect import open_sqlite
from gateway.db.migrate import MIGRATIONS_DIR, MigrationError, load_migrations, migrate_postgres, migrate_sqlite
from tests.dbs import create_pg_database, drop_pg_database


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    dsn = create_pg_database()
    yield dsn
    drop_pg_database(dsn)


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


GOOD = {"0001_first.sql": "CREATE TABLE first_table (id INTEGER PRIMARY KEY);\n"}
FAILING = {
    **GOOD,
    # Creates a table, then fails: the table must not survive.
    "0002_broken.sql": "CREATE TABLE second_table (id INTEGER);\nINSERT INTO no_such_table VALUES (1);\n",
}
FIXED = {**GOOD, "0002_broken.sql": "CREATE TABLE second_table (id INTEGER);\n"}


async def pg_tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


def sqlite_tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return {r[0] for r in rows}


async def test_postgres_applies_in_order_records_and_reruns_as_a_no_op(fresh_pg: str) -> None:
    conn = await asyncpg.connect(fresh_pg)
    try:
        shipped = [m.file for m in load_migrations(MIGRATIONS_DIR / "postgres")]
        assert shipped[:2] == ["0001_teams_and_keys.sql", "0002_audit_log.sql"]
        assert await migrate_postgres(conn) == shipped
        recorded = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [f"{r['version']:04d}_{r['name']}.sql" for r in recorded] == shipped
        assert {"teams", "api_keys", "api_key_secrets", "audit_log"} <= await pg_tables(conn)
        assert await migrate_postgres(conn) == []
    finally:
        await conn.close()


async def test_postgres_failing_migration_leaves_the_schema_as_it_was(fresh_pg: str, tmp_path: Path) -> None:
    directory = write(tmp_path / "m", FAILING)
    conn = await asyncpg.connect(fresh_pg)
    try:
        with pytest.raises(MigrationError, match=r"0002_broken\.sql"):
            await migrate_postgres(conn, directory)
        assert await pg_tables(conn) == {"schema_migrations", "first_table"}
        assert [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")] == [1]
        # The lock was released: the fixed file applies at the next run.
        write(directory, FIXED)
        assert await migrate_postgres(conn, directory) == ["0002_broken.sql"]
        assert "second_table" in await pg_tables(conn)
    finally:
        await conn.close()


async def test_postgres_concurrent_start_ups_apply_each_migration_once(fresh_pg: str) -> None:
    conns = [await asyncpg.connect(fresh_pg) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate_postgres(c) for c in conns))
        applied = [file for result in results for file in result]
        shipped = [m.file for m in load_migrations(MIGRATIONS_DIR / "postgres")]
        assert sorted(applied) == shipped
        assert await conns[0].fetchval("SELECT count(*) FROM schema_migrations") == len(shipped)
    finally:
        for conn in conns:
            await conn.close()


def test_sqlite_applies_records_and_reruns_as_a_no_op(tmp_path: Path) -> None:
    conn = open_sqlite(tmp_path / "g.db")
    shipped = [m.file for m in load_migrations(MIGRATIONS_DIR / "sqlite")]
    assert shipped[:2] == ["0001_teams_and_keys.sql", "0002_audit_log.sql"]
    assert migrate_sqlite(conn) == shipped
    assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")] == [
        int(f[:4]) for f in shipped
    ]
    assert {"teams", "api_keys", "api_key_secrets", "audit_log"} <= sqlite_tables(conn)
    assert migrate_sqlite(conn) == []


def test_sqlite_failing_migration_leaves_the_schema_as_it_was(tmp_path: Path) -> None:
    directory = write(tmp_path / "m", FAILING)
    conn = open_sqlite(tmp_path / "g.db")
    with pytest.raises(MigrationError, match=r"0002_broken\.sql"):
        migrate_sqlite(conn, directory)
    assert sqlite_tables(conn) == {"schema_migrations", "first_table"}
    assert not conn.in_transaction
    write(directory, FIXED)
    assert migrate_sqlite(conn, directory) == ["0002_broken.sql"]


def test_sqlite_concurrent_processes_apply_each_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "g.db"

    def run() -> list[str]:
        return migrate_sqlite(open_sqlite(path))

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: run(), range(4)))
    shipped = [m.file for m in load_migrations(MIGRATIONS_DIR / "sqlite")]
    assert sorted(f for r in results for f in r) == shipped


def test_sqlite_statements_split_on_real_semicolons_only(tmp_path: Path) -> None:
    directory = write(tmp_path / "m", {
        "0001_tricky.sql": "-- a comment; with a semicolon\nCREATE TABLE t (v TEXT DEFAULT 'a;b');"
                           " INSERT INTO t VALUES ('x;y');\n-- trailing comment\n",
    })
    conn = open_sqlite(tmp_path / "g.db")
    migrate_sqlite(conn, directory)
    assert [r[0] for r in conn.execute("SELECT v FROM t")] == ["x;y"]


@pytest.mark.parametrize("name", ["1_short.sql", "0001-Bad.sql", "0001_.sql"])
def test_badly_named_files_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations(write(tmp_path / "m", {name: "SELECT 1;"}))


def test_two_files_with_one_number_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="version 1"):
        load_migrations(write(tmp_path / "m", {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"}))


def migrate_command(tmp_path: Path, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"settings": settings, "models": []}))
    return subprocess.run(
        [sys.executable, "-m", "gateway", "db", "migrate", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_db_migrate_command_on_postgres(fresh_pg: str, tmp_path: Path) -> None:
    first = migrate_command(tmp_path, {"database_url": fresh_pg})
    assert first.returncode == 0, first.stderr
    assert "applied 0001_teams_and_keys.sql" in first.stdout
    second = migrate_command(tmp_path, {"database_url": fresh_pg})
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout


def test_db_migrate_command_on_sqlite(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = migrate_command(tmp_path, {"data_dir": str(data)})
    assert result.returncode == 0, result.stderr
    assert "applied 0002_audit_log.sql" in result.stdout
    assert "audit_log" in sqlite_tables(sqlite3.connect(data / "gateway.db"))


def test_db_migrate_command_names_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    result = migrate_command(tmp_path, {"database_url": "postgresql://postgres:s3cret@127.0.0.1:1/nope"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
