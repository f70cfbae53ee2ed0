"""Private redis-server processes on free ports, for tests that stop, pause, flush or cluster them.

The shared Redis (127.0.0.1:6379) is never touched by anything here.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.procs import free_port

START_TIMEOUT_S = 10.0


class PrivateRedis:
    def __init__(self, workdir: Path, *extra: str, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = workdir / f"redis-{self.port}"
        self.dir.mkdir(parents=True)
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=5)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.dir),
             *(["--requirepass", self.password] if self.password else []), *self.extra],
            stdout=open(self.dir / "log", "wb"),
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server on {self.port} exited with {self.proc.returncode}")
            with contextlib.suppress(redis.ConnectionError), self.client() as client:
                client.ping()
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server on {self.port} did not answer")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def pause(self) -> None:
        """The server keeps its socket but answers nothing: what a hung or partitioned Redis looks like."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


class PrivateCluster:
    """Three masters, no replicas: the smallest Redis Cluster."""

    def __init__(self, workdir: Path) -> None:
        self.nodes: list[PrivateRedis] = []
        try:
            for _ in range(3):
                # The bus port defaults to port + 10000, which free ports above 55535 cannot have.
                self.nodes.append(PrivateRedis(workdir, "--cluster-enabled", "yes", "--cluster-port", str(free_port())))
            subprocess.run(
                ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            deadline = time.monotonic() + START_TIMEOUT_S
            while not all(self._ok(n) for n in self.nodes):
                if time.monotonic() > deadline:
                    raise TimeoutError("the private cluster did not reach cluster_state:ok")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        self.url = self.nodes[0].url

    @staticmethod
    def _ok(node: PrivateRedis) -> bool:
        with node.client() as client:
            info = client.execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
