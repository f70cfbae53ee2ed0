"""A real gateway and a real fake Cohere server, as separate processes on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

MASTER_KEY = "sk-cohere-plugin-test-master-0123456789"
COHERE_KEY = "cohere-upstream-key-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(args: list[str], ready_url: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(ready_url, timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{args} did not come up")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def cohere_fake() -> Iterator[str]:
    port = _free_port()
    proc = _start([sys.executable, "-m", "cohere_provider.fake", "--port", str(port), "--require-key", COHERE_KEY],
                  f"http://127.0.0.1:{port}/_fake/stats")
    yield f"http://127.0.0.1:{port}"
    _stop(proc)


@pytest.fixture(scope="session")
def cohere_gateway(cohere_fake: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    config: Path = tmp_path_factory.mktemp("cohere") / "gateway.yaml"
    config.write_text(yaml.safe_dump({"models": [{"name": "command", "deployments": [{
        "provider": "cohere", "base_url": cohere_fake + "/v2", "model": "command-r-plus",
        "api_key_env": "TEST_COHERE_KEY"}]}]}))
    env = {**os.environ, "GATEWAY_MASTER_KEY": MASTER_KEY, "TEST_COHERE_KEY": COHERE_KEY}
    proc = _start([sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)],
                  f"http://127.0.0.1:{port}/healthz", env)
    yield f"http://127.0.0.1:{port}/v1"
    _stop(proc)


@pytest.fixture
def sdk(cohere_gateway: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=cohere_gateway, api_key=MASTER_KEY, max_retries=0)
