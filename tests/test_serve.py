"""`gateway serve` before it serves: what it says is in use, unknown variables, a taken port.

Real processes on loopback, real PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from tests.dbs import PG_SERVER, REDIS_URL, redis_prefix
from tests.procs import MASTER_KEY, free_port, stop, wait_http

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.upper().startswith("GATEWAY_")}


def start(tmp_path: Path, settings: dict[str, object], env: dict[str, str] | None = None,
          plugins: dict[str, object] | None = None) -> tuple[subprocess.Popen[str], Path]:
    """`gateway serve` on a free port until it answers; its stderr goes to a file."""
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"settings": {"data_dir": str(tmp_path / "data"), **settings},
                                      "models": [], **({"plugins": plugins} if plugins else {})}))
    port = free_port()
    log = tmp_path / "stderr.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)],
            env={**CLEAN_ENV, "GATEWAY_MASTER_KEY": MASTER_KEY, **(env or {})}, stderr=out,
            stdout=subprocess.DEVNULL, text=True,
        )
    wait_http(f"http://127.0.0.1:{port}/readyz", proc)
    return proc, log


def test_start_up_says_what_is_in_use_without_secrets(tmp_path: Path, pg_dsn: str) -> None:
    # Trust authentication: the server ignores the password, so the URL may carry one to be hidden.
    with_password = pg_dsn.replace("postgresql://postgres@", "postgresql://postgres:s3cret-pw@")
    assert with_password != pg_dsn and PG_SERVER in pg_dsn
    proc, log = start(tmp_path, {"database_url": with_password, "redis_url": REDIS_URL,
                                 "redis_prefix": redis_prefix()}, plugins={"global": [{"name": "cache"}]})
    stop(proc)
    text = log.read_text()
    redis_shown = REDIS_URL.rstrip("/")
    assert f"key store: {pg_dsn}\n" in text
    assert f"ledger: {pg_dsn}\n" in text
    assert f"limiter: redis {redis_shown} (failure mode closed)\n" in text
    assert f"cache: exact match in redis {redis_shown}\n" in text
    assert "s3cret-pw" not in text
    # redis-py warned at every start when given a synchronous Retry (the asyncio clients' own now).
    assert "redis.retry.Retry" not in text and "UserWarning" not in text


def test_an_unknown_variable_is_a_warning_naming_the_closest(tmp_path: Path) -> None:
    proc, log = start(tmp_path, {}, env={"GATEWAY_DATABSE_URL": "postgresql://postgres@127.0.0.1:5432/x"})
    stop(proc)
    lines = log.read_text().splitlines()
    assert lines[0] == ("gateway: warning: GATEWAY_DATABSE_URL is not a setting; "
                        "did you mean GATEWAY_DATABASE_URL?")
    assert f"key store: sqlite {tmp_path / 'data' / 'gateway.db'}" in lines


def test_a_taken_port_is_one_line_before_anything_else(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"settings": {"data_dir": str(tmp_path / "data")}, "models": []}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(config),
                                 "--port", str(port)], capture_output=True, text=True, timeout=60,
                                env={**CLEAN_ENV, "GATEWAY_MASTER_KEY": MASTER_KEY})
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"gateway: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(another process has it: pick a free one with --port)"]
    assert not (tmp_path / "data").exists()  # nothing was opened


def test_a_database_url_that_is_not_postgres_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"settings": {"database_url": "mysql://u:pw@db/x"}, "models": []}))
    result = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", "0"],
                            capture_output=True, text=True, timeout=60,
                            env={**CLEAN_ENV, "GATEWAY_MASTER_KEY": MASTER_KEY})
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["config error: settings.database_url: must be a postgresql:// URL"]
