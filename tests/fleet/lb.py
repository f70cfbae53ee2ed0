"""nginx as the fleet's load balancer: a private instance on a free port, stopped with the fixture."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.procs import free_port

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
START_TIMEOUT_S = 10.0


class Nginx:
    def __init__(self, workdir: Path, backends: list[int]) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        assert Path(binary).exists(), "nginx is missing: apt-get install -y nginx (.ci/run does)"
        self.port = free_port()
        self.prefix = workdir / f"nginx-{self.port}"
        self.prefix.mkdir(parents=True)
        servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=30s;" for port in backends)
        conf = (TEMPLATE.read_text().replace("@PREFIX@", str(self.prefix)).replace("@SERVERS@", servers)
                .replace("@LISTEN_PORT@", str(self.port)))  # fmt: skip
        (self.prefix / "nginx.conf").write_text(conf)
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
             "-e", str(self.prefix / "error.log"), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {self.log()}")
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nginx did not answer on {self.port}: {self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight, then exit
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
