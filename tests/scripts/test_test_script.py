"""`scripts/test`, the README's test command, in its `--setup-only` mode (no pytest inside pytest).

On this machine everything it sets up is there already, so it must do nothing and say nothing.
What it does on a fresh machine is checked with stand-ins for the system's commands on PATH
(apt-get, pg_isready, pg_ctlcluster, redis-cli, redis-server, service) that record how they were called:
the shared PostgreSQL and Redis of this machine must never be stopped to test the starting.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "test"
# This interpreter's `python` first, as in the virtualenv the script is run from.
PATH = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"

# Each stand-in logs its arguments; the services answer once their start command has run.
STAND_INS = {
    # `apt-get install` makes the package's commands (the last argument names the package).
    "apt-get": 'echo "apt-get $*" >>"$LOG"; [ "$1" = install ] || exit 0; for last; do :; done; '
               'case "$last" in chromium) made="$CHROMIUM";; nginx) made="$NGINX";; '
               'prometheus) made="$PROMETHEUS $PROMTOOL";; esac; '
               'for f in $made; do printf "#!/bin/sh\\n" >"$f"; chmod +x "$f"; done; exit 0',
    "service": 'echo "service $*" >>"$LOG"; exit 3',
    "pg_isready": 'echo "pg_isready $*" >>"$LOG"; [ -f "$STATE/pg" ]',
    "pg_ctlcluster": 'echo "pg_ctlcluster $*" >>"$LOG"; touch "$STATE/pg"',
    "redis-cli": 'echo "redis-cli $*" >>"$LOG"; [ -f "$STATE/redis" ] && echo PONG',
    "redis-server": 'echo "redis-server $*" >>"$LOG"; touch "$STATE/redis"',
}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PATH": PATH, **(env or {})})


def test_nothing_to_do_is_silent() -> None:
    first = run("--setup-only")  # may install the project once, if this environment's copy is stale
    assert first.returncode == 0, first.stderr
    again = run("--setup-only")
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


def test_a_fresh_machine_gets_every_package_and_both_services(tmp_path: Path) -> None:
    stand_ins, state = tmp_path / "bin", tmp_path / "state"
    stand_ins.mkdir()
    state.mkdir()
    for name, body in STAND_INS.items():
        path = stand_ins / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.log"
    # Where the script looks for each command it installs: nowhere yet, as on a fresh machine.
    missing = {name.upper(): str(tmp_path / name) for name in ("chromium", "nginx", "prometheus", "promtool")}
    env = {"PATH": f"{stand_ins}:{PATH}", "LOG": str(log), "STATE": str(state), **missing}
    result = run("--setup-only", env=env)
    assert result.returncode == 0, result.stderr
    calls = [line for line in log.read_text().splitlines()
             if not line.startswith(("pg_isready", "redis-cli", "service"))]
    version = " ".join(sorted(os.listdir("/etc/postgresql")))
    assert calls == [
        "apt-get update -qq",
        "apt-get install -y -qq chromium",
        "apt-get update",
        "apt-get install -y --no-install-recommends prometheus",
        "apt-get update -qq",
        "apt-get install -y -qq nginx",
        f"pg_ctlcluster --skip-systemctl-redirect {version} main start",
        'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save  --appendonly no '
        "--dir /var/lib/redis --logfile /var/log/redis/ci.log",
    ]
    assert "pg_isready -h 127.0.0.1 -p 5432 -q" in log.read_text()
    said = [line for line in result.stderr.splitlines() if "installing the project" not in line]  # a stale venv
    assert said == ["scripts/test: installing Debian's chromium (the admin UI's browser tests)",
                    "scripts/test: installing Debian's prometheus (the dashboards' and alert rules' tests)",
                    "scripts/test: installing Debian's nginx (the fleet tests' load balancer)",
                    "scripts/test: starting PostgreSQL", "scripts/test: starting Redis"]
    # Once installed and started, the next run finds everything there and does nothing.
    log.unlink()
    again = run("--setup-only", env=env)
    assert again.returncode == 0 and again.stderr == ""
    assert not [line for line in log.read_text().splitlines()
                if not line.startswith(("pg_isready", "redis-cli", "service"))]


def test_pytest_collecting_nothing_is_a_failure() -> None:
    result = run("-q", "-p", "no:cacheprovider", "-k", "no_test_has_this_name", "tests/core")
    assert result.returncode == 1
    assert "scripts/test: pytest collected no tests" in result.stderr


def test_ci_runs_exactly_the_test_command() -> None:
    commands = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith(("#", "set ", "cd "))]
    # The README's test command, then the checks that need no services: lint, import contracts, types.
    assert commands == ["scripts/test", "ruff check .", "lint-imports", "mypy"]
