"""Real processes on loopback for the tests: the fake upstream and the gateway."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

MASTER_KEY = "sk-test-master-0123456789abcdefghijkl"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {seconds}s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, seconds: float = 15) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class FakeUpstream:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "fake-upstream", "--port", str(self.port), *args],
        )
        try:
            wait_http(f"http://127.0.0.1:{self.port}/_fake/stats", self.proc)
        except BaseException:
            stop(self.proc)  # never ready: it must not outlive its test
            raise

    def stats(self) -> dict[str, int]:
        return httpx.get(f"http://127.0.0.1:{self.port}/_fake/stats").json()

    def requests(self, request_id: str) -> list[dict[str, Any]]:
        return httpx.get(f"http://127.0.0.1:{self.port}/_fake/requests", params={"request_id": request_id}).json()

    def close(self) -> None:
        stop(self.proc)


class Gateway:
    """`gateway serve` in a subprocess, with a config written for the test."""

    def __init__(
        self,
        tmp: Path,
        models: list[dict[str, Any]],
        settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        workers: int = 1,
        log: Path | None = None,
        routing: dict[str, Any] | None = None,
        plugins: dict[str, Any] | None = None,
        start_s: float = 20,
        wait: bool = True,
    ) -> None:
        """`wait=False`: return at once and call `wait_ready` later (to start several side by side)."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/v1"
        self.config = tmp / f"gateway-{self.port}.yaml"
        # The embedded default's files (SQLite key store, ledger) go in the test's tmp, not the checkout.
        settings = {"data_dir": str(tmp / "gateway-data"), **(settings or {})}
        config: dict[str, Any] = {"settings": settings, "models": models}
        if routing is not None:
            config["routing"] = routing  # the config file's `routing:` section (gateway/config/routing.py)
        if plugins is not None:
            config["plugins"] = plugins  # the config file's `plugins:` section (gateway/config/plugins.py)
        self.config.write_text(yaml.safe_dump(config))
        full_env = {**os.environ, "GATEWAY_MASTER_KEY": MASTER_KEY, **(env or {})}
        # `log`: the server's stdout and stderr go to this file, for tests that read its logs.
        out = log.open("ab") if log is not None else None
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--config", str(self.config),
                 "--port", str(self.port), "--workers", str(workers)],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
                # A process group of its own, so that `kill` reaches the workers it forks too.
                start_new_session=True,
            )
        finally:
            if out is not None:
                out.close()
        # `start_s` bounds a failure, not a speed: a loaded machine starts workers slowly.
        self.start_s = start_s
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        try:
            wait_http(self.base + "/healthz", self.proc, self.start_s)
        except BaseException:
            self.close()  # a gateway that never became ready must not outlive its test
            raise

    def kill(self) -> None:
        """SIGKILL the server and its workers at once, as a crash or the OOM killer does: no drain,
        no goodbye, nothing flushed."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> int:
        code = stop(self.proc)
        # Workers that outlived their master (it was killed) go with their group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return code


def deployment(upstream: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "base_url": upstream.url, "model": "fake-gpt", **extra}


def ledger_rows(gw: Gateway, request_ids: list[str], seconds: float = 30) -> dict[str, dict[str, Any]]:
    """The ledger rows of these requests, by request id, once all are written (the writer batches)."""
    deadline = time.monotonic() + seconds
    while True:
        rows = httpx.get(gw.base + "/admin/api/ledger/requests", params={"limit": 200},
                         headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=30).json()["data"]
        found = {r["request_id"]: r for r in rows if r["request_id"] in request_ids}
        if len(found) == len(request_ids):
            return found
        assert time.monotonic() < deadline, f"ledger rows never arrived: {sorted(set(request_ids) - set(found))}"
        time.sleep(0.1)
