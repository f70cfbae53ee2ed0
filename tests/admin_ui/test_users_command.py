"""`gateway admin-user` says which database it wrote to, never falls back to SQLite when another
database is meant, and without a terminal asks for `--password-stdin` in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.procs import free_port

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.upper().startswith("GATEWAY_")}
PASSWORD = "a-long-enough-password"


def config_file(tmp_path: Path, **settings: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"settings": {"data_dir": str(tmp_path / "data"), **settings}, "models": []}))
    return path


def admin_user(config: Path, *args: str, password: str | None = PASSWORD, env: dict[str, str] | None = None,
               no_terminal: bool = False) -> subprocess.CompletedProcess[str]:
    extra = ["--password-stdin"] if password is not None else []
    return subprocess.run(
        [sys.executable, "-m", "gateway", "admin-user", *args, "--config", str(config), *extra],
        input=(password + "\n") if password is not None else None,
        stdin=subprocess.DEVNULL if password is None else None, capture_output=True, text=True, timeout=60,
        env={**CLEAN_ENV, **(env or {})},
        # A new session has no controlling terminal, as under cron, CI or `ssh host cmd`.
        start_new_session=no_terminal,
    )


def test_it_says_which_database_it_wrote_to(tmp_path: Path, pg_dsn: str) -> None:
    on_sqlite = admin_user(config_file(tmp_path), "create", "--username", "carol")
    assert on_sqlite.returncode == 0, on_sqlite.stderr
    assert on_sqlite.stdout == f"created carol (admin) in sqlite {tmp_path / 'data' / 'gateway.db'}\n"

    with_password = pg_dsn.replace("postgresql://postgres@", "postgresql://postgres:s3cret-pw@")
    on_postgres = admin_user(config_file(tmp_path, database_url=with_password), "create", "--username", "carol")
    assert on_postgres.returncode == 0, on_postgres.stderr
    assert on_postgres.stdout == f"created carol (admin) in {pg_dsn}\n"
    changed = admin_user(config_file(tmp_path, database_url=with_password), "password", "--username", "carol")
    assert changed.stdout == f"password: carol done in {pg_dsn}\n"
    assert "s3cret-pw" not in on_postgres.stdout + on_postgres.stderr + changed.stdout + changed.stderr


def test_an_unreachable_database_is_an_error_not_sqlite(tmp_path: Path) -> None:
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/gateway"
    result = admin_user(config_file(tmp_path, database_url=nobody), "create", "--username", "carol")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("gateway admin-user: cannot connect to PostgreSQL") and line.endswith(
        f"({nobody}; nothing written)")
    assert not (tmp_path / "data").exists()


def test_a_misspelt_database_variable_refuses_sqlite(tmp_path: Path, pg_dsn: str) -> None:
    result = admin_user(config_file(tmp_path), "create", "--username", "carol",
                        env={"GATEWAY_DATABSE_URL": pg_dsn})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "gateway: warning: GATEWAY_DATABSE_URL is not a setting; did you mean GATEWAY_DATABASE_URL?",
        f"gateway admin-user: not writing into sqlite {tmp_path / 'data' / 'gateway.db'}: GATEWAY_DATABSE_URL is "
        "not a setting (did you mean GATEWAY_DATABASE_URL?); correct its name, or unset it to use SQLite",
    ]
    assert not (tmp_path / "data").exists()
    # Spelt right, the same variable takes the user to PostgreSQL.
    fixed = admin_user(config_file(tmp_path), "create", "--username", "carol", env={"GATEWAY_DATABASE_URL": pg_dsn})
    assert fixed.returncode == 0 and fixed.stdout == f"created carol (admin) in {pg_dsn}\n"


def test_without_a_terminal_it_asks_for_password_stdin_in_one_line(tmp_path: Path) -> None:
    result = admin_user(config_file(tmp_path), "create", "--username", "carol", password=None, no_terminal=True)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "gateway admin-user: no terminal to ask for the password on: pipe it in with --password-stdin"]
    assert not (tmp_path / "data").exists()
