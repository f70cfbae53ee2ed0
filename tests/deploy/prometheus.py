"""A real Prometheus server (Debian's `prometheus` package) for the tests: a private instance on a
free loopback port, with its own config and a temporary storage directory, queried over its HTTP API.

Never the system service: the package's own service is left alone (policy-rc.d keeps it from
starting on install, see scripts/install-prometheus); this one lives and dies with the test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.procs import free_port, stop

INSTALL = "apt-get install -y prometheus (scripts/test does, through scripts/install-prometheus)"


def binary(name: str) -> str:
    """`prometheus` or `promtool`; a missing one fails the test (never skips) with the fix."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    assert path is not None, f"{name} is missing: {INSTALL}"
    return path


class Prometheus:
    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.dir = tmp
        self.config_path = tmp / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "prometheus.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [binary("prometheus"), f"--config.file={self.config_path}", f"--storage.tsdb.path={tmp / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
                 "--storage.tsdb.retention.time=1h"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"prometheus was not ready within {seconds}s")

    def reload(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config))
        httpx.post(self.base + "/-/reload", timeout=10).raise_for_status()

    def _api(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.base}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        data = self._api("query_range", query=expr, start=start, end=end, step=step)
        return list(data["result"])

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self._api("query", query=expr)["result"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self._api("alerts")["alerts"])

    def firing(self) -> set[str]:
        return {a["labels"]["alertname"] for a in self.alerts() if a["state"] == "firing"}

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self._api("rules")["groups"] for rule in group["rules"]]

    def targets(self) -> list[dict[str, Any]]:
        return list(self._api("targets")["activeTargets"])

    def close(self) -> None:
        stop(self.proc)


_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(\s*)(?!bool\b)(?=[-+]?\d)")
_QUOTED_OR_BRACED = re.compile(r'"(?:[^"\\]|\\.)*"|\{[^}]*\}')


def as_signal(expr: str) -> str:
    """An alert expression with each comparison against a number turned into `bool` form: it keeps
    every series the alert looks at (1 where the alert's condition holds, 0 elsewhere), so that
    "returns data" means the rule's inputs exist and it computes, whether or not it fires now."""
    out, last = [], 0
    for match in _QUOTED_OR_BRACED.finditer(expr):  # label matchers (`!=`) and strings stay as they are
        out.append(_COMPARISON.sub(r"\1 bool\2", expr[last : match.start()]))
        out.append(match.group())
        last = match.end()
    out.append(_COMPARISON.sub(r"\1 bool\2", expr[last:]))
    return "".join(out)


def has_values(result: list[dict[str, Any]], nonzero: bool = False) -> bool:
    """Whether a query_range result holds any point (any point other than 0 and NaN, for `nonzero`)."""
    points = [float(value) for series in result for _, value in series["values"]]
    if not nonzero:
        return bool(points)
    return any(point != 0 and point == point for point in points)
