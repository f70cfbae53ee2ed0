"""Running a container's command and health check as processes on loopback.

A command from a Dockerfile or compose file runs here as it would in its container, with the
address moved to 127.0.0.1 and the port to a free one; then its own health check, taken from
the same file, decides whether it is healthy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tests.deploy.code import console_scripts
from tests.procs import stop

HEALTHY_WITHIN_S = 30


def entrypoint_argv(argv: Sequence[str]) -> list[str]:
    """`gateway ...` as the console script runs it, under this test's interpreter."""
    script, *rest = argv
    module, _, function = console_scripts()[script].partition(":")
    launcher = f"import sys; from {module} import {function}; sys.exit({function}())"
    return [sys.executable, "-c", launcher, *rest]


def clean_env(*layers: dict[str, str]) -> dict[str, str]:
    """This process's environment without any GATEWAY_* variable a developer may have set, then
    the layers in order (a later one wins, as in a container's env over its image's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    for layer in layers:
        env.update(layer)
    return env


def healthcheck_argv(test: Sequence[str] | str) -> list[str]:
    """A health check's command in Docker's forms: ["CMD", ...], ["CMD-SHELL", "..."] or a string."""
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    kind, *rest = test
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", rest[0]]
    assert kind == "CMD", f"unexpected health check form {kind!r}"
    return [sys.executable if rest[0] in ("python", "python3") else rest[0], *rest[1:]]


def check(argv: Sequence[str], env: dict[str, str]) -> int:
    return subprocess.run(list(argv), env=env, timeout=30, capture_output=True).returncode


class Running:
    """A started process that must become healthy by its own health check."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.env = env
        with log.open("ab") as out:
            self.proc = subprocess.Popen(list(argv), env=env, stdout=out, stderr=subprocess.STDOUT)
        self.log = log

    def wait_healthy(self, health: Sequence[str]) -> None:
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        while check(health, self.env) != 0:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not healthy within {HEALTHY_WITHIN_S}s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> int:
        return stop(self.proc)  # type: ignore[arg-type]
