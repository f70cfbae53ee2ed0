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

    def kill(self) -> None:
        """Gone at once, as a crashed or powered-off server is: no shutdown, no goodbye to its peers."""
        assert self.proc is not None
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
    """Three masters, each with `replicas` replicas (none: the smallest Redis Cluster).

    `node_timeout_ms` is how long the cluster waits before it holds a silent master failed and
    promotes its replica: short here, so a failover takes a second or two.
    """

    def __init__(self, workdir: Path, *, replicas: int = 0, node_timeout_ms: int = 15000) -> None:
        self.nodes: list[PrivateRedis] = []
        try:
            for _ in range(3 * (1 + replicas)):
                # The bus port defaults to port + 10000, which free ports above 55535 cannot have.
                # A replica syncs at once (no wait for others to share the transfer), and may take
                # over however long it has been cut off from its master.
                self.nodes.append(PrivateRedis(workdir, "--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                                               "--cluster-node-timeout", str(node_timeout_ms),
                                               "--repl-diskless-sync-delay", "0",
                                               "--cluster-replica-validity-factor", "0"))  # fmt: skip
            subprocess.run(
                ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", str(replicas), "--cluster-yes"],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            deadline = time.monotonic() + START_TIMEOUT_S
            while not all(self._ok(n) for n in self.nodes) or not all(self._synced(n) for n in self.replicas()):
                if time.monotonic() > deadline:
                    raise TimeoutError("the private cluster did not reach cluster_state:ok with its replicas in sync")
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

    @staticmethod
    def _replication(node: PrivateRedis) -> dict[str, object]:
        with node.client() as client:
            return dict(client.info("replication"))

    @classmethod
    def _synced(cls, node: PrivateRedis) -> bool:
        return cls._replication(node).get("master_link_status") == "up"

    def running(self) -> list[PrivateRedis]:
        return [n for n in self.nodes if n.proc is not None]

    def replicas(self) -> list[PrivateRedis]:
        return [n for n in self.running() if self._replication(n).get("role") == "slave"]

    def master_of(self, key: str) -> PrivateRedis:
        """The node that serves `key`'s slot now."""
        slot = self._slot(key)
        for node in self.running():
            with node.client() as client:
                ranges = client.execute_command("CLUSTER", "SLOTS")
            for start, end, master, *_ in ranges:
                if start <= slot <= end:
                    port = int(master[1])
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no node serves slot {slot}")

    def _slot(self, key: str) -> int:
        with self.running()[0].client() as client:
            return int(client.execute_command("CLUSTER", "KEYSLOT", key))

    def wait_promoted(self, failed: PrivateRedis, key: str, timeout_s: float = 30.0) -> PrivateRedis:
        """After `failed` stopped: wait until another node serves `key`'s slot and the cluster is ok."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(redis.RedisError, LookupError, StopIteration):
                master = self.master_of(key)
                if master is not failed and all(self._ok(n) for n in self.running()):
                    return master
            if time.monotonic() > deadline:
                raise TimeoutError(f"no replica took over from the master on {failed.port}")
            time.sleep(0.02)

    def wait_synced(self, timeout_s: float = 30.0) -> None:
        """Every running replica (a restarted old master included) in sync with its master."""
        deadline = time.monotonic() + timeout_s
        while not all(self._synced(n) for n in self.replicas()) or not all(self._ok(n) for n in self.running()):
            if time.monotonic() > deadline:
                raise TimeoutError("the cluster's replicas did not come back in sync")
            time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
