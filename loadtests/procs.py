"""Start, wait for and stop the servers a benchmark runs, each pinned to one CPU.

Every server gets its own session (process group) so that stopping it also stops the workers it
forks, and a parent-death signal so that it does not outlive a benchmark that is killed outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """User+system CPU of this server and every process below it, alive now."""
        return sum(_cpu_seconds(pid) for pid in _tree(self.pid))

    def busiest_pid(self) -> int:
        """The process of this server's tree that has used the most CPU: its worker, when it forks one
        (and the server itself when it does not). Wrappers like `taskset` exec, so they are not in the tree."""
        return max(_tree(self.pid), key=_cpu_seconds)

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM the server's process group, SIGKILL whatever is left after `timeout_s`."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        # Forked workers can outlive the leader; the group is ours alone (start_new_session).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout_s)


class ServerFailed(RuntimeError):
    """A server exited or never became ready; the message carries its log's tail."""


def start(
    name: str,
    argv: Sequence[str],
    *,
    log_dir: Path,
    cpu: int | None = None,
    env: Mapping[str, str | None] | None = None,
    cwd: Path = REPO,
) -> Server:
    """Start `argv` (pinned to `cpu`) with `env` over ours, where None removes a variable."""
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return Server(name, process, log)


async def wait_ready(
    server: Server, url: str, *, timeout_s: float = 30.0, headers: Mapping[str, str] | None = None
) -> None:
    """Poll `url` until it answers 200; fail early if the server exits."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise ServerFailed(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")
            try:
                response = await client.get(url, headers=dict(headers or {}))
                if response.status_code == 200:
                    return
                last = f"status {response.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            await asyncio.sleep(0.1)
    raise ServerFailed(f"{server.name} not ready at {url} after {timeout_s}s ({last}):\n{server.log_tail()}")


async def wait_port(server: Server, port: int, *, timeout_s: float = 30.0) -> None:
    """Wait until 127.0.0.1:`port` accepts connections, for servers with no health route."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerFailed(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise ServerFailed(f"{server.name} not listening on {port} after {timeout_s}s:\n{server.log_tail()}")


def core_busy_seconds() -> dict[int, float]:
    """CPU seconds each core has spent busy since boot, whoever ran there (idle, iowait and steal excluded)."""
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *ticks = line.split()
            if name.startswith("cpu") and name != "cpu":
                user, nice, system, _idle, _iowait, irq, softirq = (int(t) for t in ticks[:7])
                busy[int(name[3:])] = (user + nice + system + irq + softirq) / CLOCK_TICKS
    return busy


def _tree(root: int) -> Iterator[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int(_stat_fields(int(entry.name))[1])
                children.setdefault(ppid, []).append(int(entry.name))
    stack = [root]
    while stack:
        pid = stack.pop()
        yield pid
        stack.extend(children.get(pid, ()))


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name, so index 0 is the state."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    return raw[raw.rindex(b")") + 2 :].decode().split()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def private_redis(core: int) -> tuple[subprocess.Popen[bytes], str]:
    """A throwaway `redis-server` on a free port, pinned to `core`, no persistence: (process, URL)."""
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", str(core), "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0:
            return proc, url
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")
