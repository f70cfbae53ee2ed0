"""The coding agents themselves (Codex CLI, Claude Code) against a real gateway on loopback.

Each model name is one the clients do not know, served by an agent-mode fake: `house-anthropic`
by the Anthropic adapter, `house-openai` by an OpenAI-compatible deployment. The fakes call the
tool the prompt names with its quoted command, then answer the tool's result. The gateway logs
prompts, so its request log shows what each turn carried.

scripts/test installs both clients and sets REQUIRE_AGENT_CLIENTS=1: there a missing client is a
failure. Elsewhere (a developer without npm) the tests skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment
from tests.providers.procs import ProviderFake

REQUIRED_ENV = "REQUIRE_AGENT_CLIENTS"
ANTHROPIC_KEY = "sk-ant-upstream-key-clients-0123456789"
# Claude Code's system prompt alone is about 6000 words, past the fake's default context.
CONTEXT_WORDS = "200000"
# The fakes echo this many words of a tool's result back: enough for the whole of Codex's.
ECHO_WORDS = "64"
# A hard bound on every client run (a run takes a few seconds; a loaded machine, more).
CLIENT_TIMEOUT_S = 240
MODELS = {"anthropic": "house-anthropic", "openai": "house-openai"}


def client_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"`{name}` is not on PATH; scripts/test installs it (install_npm_clients)"
        if os.environ.get(REQUIRED_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_client(args: list[str], env: dict[str, str], cwd: Path) -> Run:
    """The client in a session of its own, killed with everything it started if it overruns."""
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=CLIENT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{args[0]} ran past {CLIENT_TIMEOUT_S}s\nstdout:\n{stdout}\nstderr:\n{stderr}")
    return Run(proc.returncode, stdout, stderr)


@dataclass
class AgentsGateway:
    gateway: Gateway
    log: Path
    anthropic: ProviderFake
    openai: FakeUpstream

    def new_key(self, name: str) -> tuple[str, str]:
        """A virtual key of its own for one client run: (key, prefix)."""
        with httpx.Client(base_url=self.gateway.base + "/admin/api",
                          headers={"authorization": f"Bearer {MASTER_KEY}"}) as admin:
            made = admin.post("/keys", json={"name": name})
            made.raise_for_status()
            return made.json()["key"], made.json()["prefix"]

    def request_lines(self, key_prefix: str, count: int, seconds: float = 10) -> list[dict[str, Any]]:
        """The request log lines of one key, waited for (each is written after its answer)."""
        deadline = time.monotonic() + seconds
        while True:
            lines = [doc for doc in map(_json_line, self.log.read_text().splitlines())
                     if doc is not None and doc.get("msg") == "request" and doc.get("key_prefix") == key_prefix]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.1)

    def upstream_requests(self, backend: str, request_id: str) -> list[dict[str, Any]]:
        fake = self.anthropic if backend == "anthropic" else self.openai
        return fake.requests(request_id)


def _json_line(raw: str) -> dict[str, Any] | None:
    if not raw.startswith("{"):
        return None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


@pytest.fixture(scope="session")
def agents_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentsGateway]:
    anthropic = ProviderFake("anthropic", ANTHROPIC_KEY, "--agent", "--context-words", CONTEXT_WORDS,
                             "--tokens", ECHO_WORDS)
    openai = FakeUpstream("--agent", "--tokens", ECHO_WORDS)
    tmp = tmp_path_factory.mktemp("agents")
    log = tmp / "gateway.log"
    models = [
        {"name": MODELS["anthropic"], "deployments": [{
            "provider": "anthropic", "base_url": anthropic.url, "model": "claude-upstream",
            "api_key_env": "TEST_ANTHROPIC_KEY"}]},
        {"name": MODELS["openai"], "deployments": [deployment(openai)]},
    ]
    try:
        gateway = Gateway(tmp, models, settings={"log_prompts": True}, env={"TEST_ANTHROPIC_KEY": ANTHROPIC_KEY},
                          log=log)
    except BaseException:
        anthropic.close()
        openai.close()
        raise
    yield AgentsGateway(gateway, log, anthropic, openai)
    gateway.close()
    anthropic.close()
    openai.close()
