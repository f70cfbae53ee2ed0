"""Fake vLLM replicas on loopback, told per test how to misbehave, and a gateway per test."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.procs import MASTER_KEY, Gateway, free_port, stop, wait_http
from tests.routing.fake_vllm import Behaviour

REPLICAS = 4


class Replica:
    """`python -m tests.routing.fake_vllm` in a subprocess."""

    def __init__(self, name: str, *args: str) -> None:
        self.name = name
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = self.root + "/v1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.routing.fake_vllm", "--port", str(self.port), "--name", name, *args]
        )
        wait_http(self.root + "/_fake/stats", self.proc)

    def behave(self, **changes: Any) -> None:
        httpx.post(self.root + "/_fake/behaviour", json=changes).raise_for_status()

    def reset(self) -> None:
        self.behave(**dataclasses.asdict(Behaviour()))
        httpx.post(self.root + "/_fake/reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.root + "/_fake/stats").json()

    def served(self, request_id: str | None = None) -> list[dict[str, Any]]:
        return [s for s in self.stats()["served"] if request_id is None or s["request_id"] == request_id]

    def deployment(self, **extra: Any) -> dict[str, Any]:
        return {"provider": "openai", "base_url": self.url, "model": "fake-model", "id": self.name, **extra}

    def close(self) -> None:
        stop(self.proc)


def order(request_id: str, replicas: list[Replica]) -> list[str]:
    """Which replicas saw this request, in the order they saw it (one clock for all processes)."""
    seen = [(s["at"], r.name) for r in replicas for s in r.served(request_id)]
    return [name for _, name in sorted(seen)]


@pytest.fixture(scope="module")
def replica_pool() -> Iterator[list[Replica]]:
    pool = [Replica(f"r{i}") for i in range(REPLICAS)]
    yield pool
    for replica in pool:
        replica.close()


@pytest.fixture
def replicas(replica_pool: list[Replica]) -> list[Replica]:
    for replica in replica_pool:
        replica.reset()
    return replica_pool


# Retries in tests wait a few milliseconds, not the production default.
FAST_RETRIES = {"backoff_base_s": 0.01, "backoff_max_s": 0.02}

GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    started: list[Gateway] = []

    def make(models: list[dict[str, Any]], **routing: Any) -> Gateway:
        gateway = Gateway(tmp_path, models, routing={**FAST_RETRIES, **routing})
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.close()


def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0)
