"""The README's "From the demo to your own config", run as a new user would paste it: its config
file and its shell lines as written, with three substitutions a reader makes anyway (the fake
upstream for api.openai.com, this machine's PostgreSQL and Redis for the example hosts, a password
on stdin for the prompt) and a port. Then the sign-in it promises works, and a key made by the
signed-in admin gets an answer."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.admin_ui.conftest import Session
from tests.dbs import REDIS_URL, create_pg_database, drop_pg_database, redis_prefix
from tests.procs import FakeUpstream, free_port, stop, wait_http

REPO = Path(__file__).resolve().parents[2]
SECTION = "## From the demo to your own config"
# This interpreter's `python` and `gateway` first, as in an activated virtualenv.
BIN = str(Path(sys.executable).parent)


def walkthrough() -> tuple[str, str]:
    """The section's YAML file and its shell lines."""
    text = (REPO / "README.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    config = re.search(r"```yaml\n(.*?)```", section, re.S)
    shell = re.search(r"```sh\n(.*?)```", section, re.S)
    assert config and shell, "the section shows a config file and the commands"
    return config.group(1), shell.group(1)


def test_the_section_follows_the_two_commands() -> None:
    text = (REPO / "README.md").read_text()
    headings = re.findall(r"^## .*$", text, re.M)
    assert headings[0] == SECTION, "right after the two commands"
    _, shell = walkthrough()
    for step in ("export GATEWAY_MASTER_KEY=", "gateway admin-user create", "--password-stdin", "gateway serve"):
        assert step in shell


@pytest.fixture
def dsn() -> Iterator[str]:
    name = create_pg_database()
    yield name
    drop_pg_database(name)


def test_the_walkthrough_works_as_written(tmp_path: Path, upstream: FakeUpstream, dsn: str) -> None:
    config, shell = walkthrough()
    assert "https://api.openai.com/v1" in config
    (tmp_path / "gateway.yaml").write_text(config.replace("https://api.openai.com/v1", upstream.url))
    port, password = free_port(), "carol-" + secrets.token_urlsafe(12)
    lines = []
    for line in shell.splitlines():
        if line.startswith("export GATEWAY_DATABASE_URL="):
            line = f"export GATEWAY_DATABASE_URL={dsn}"
        elif line.startswith("export GATEWAY_REDIS_URL="):
            line = f"export GATEWAY_REDIS_URL={REDIS_URL} GATEWAY_REDIS_PREFIX={redis_prefix()}"
        elif line.startswith("gateway serve"):
            # The test needs the master key the script made, to check the key store is shared.
            line = f'echo "$GATEWAY_MASTER_KEY" >master.key; exec {line.split("#")[0].strip()} --port {port}'
        lines.append(line)
    script = "set -e\n" + "\n".join(lines) + "\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    with (tmp_path / "out.log").open("wb") as out:
        proc = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, stdin=subprocess.PIPE,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert proc.stdin is not None
        proc.stdin.write(f"{password}\n".encode())  # what the reader types at the prompt
        proc.stdin.close()
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, seconds=60)
        said = (tmp_path / "out.log").read_text()
        # admin-user said where it wrote; serve's first lines name the same store, never a password.
        assert f"created carol (admin) in {dsn}" in said, said
        assert f"key store: {dsn}" in said, said
        assert "Traceback" not in said

        session = Session(f"http://127.0.0.1:{port}")
        assert session.sign_in("carol", password).status_code == 303
        made = session.post("/admin/keys", {"name": "readme-key"})
        assert made.status_code == 201, made.text[:500]
        key = re.search(r"(sk-gw-[A-Za-z0-9_\-]+)", made.text)
        assert key, "the page answering the create form shows the new key"
        session.close()
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=30,
                            headers={"Authorization": f"Bearer {key.group(1)}"},
                            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]})
        assert answer.status_code == 200 and answer.json()["choices"], answer.text
        master = (tmp_path / "master.key").read_text().strip()
        assert master.startswith("sk-") and master not in (tmp_path / "out.log").read_text()
    finally:
        stop(proc)
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
