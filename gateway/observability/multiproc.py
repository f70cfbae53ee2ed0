"""prometheus_client's multiprocess mode, for `gateway serve --workers N` with N > 1.

Each uvicorn worker is its own process, and a scrape reaches only one of them; so with several
workers every value goes to per-process files in one directory, and `/metrics` sums them all.
The library decides at import time whether to write those files, from `PROMETHEUS_MULTIPROC_DIR`,
and opens its files when the first metric is made. So `gateway serve` calls `prepare` before the
app (and its metrics) exist and before uvicorn spawns the workers: each worker is a fresh
interpreter that inherits the variable and imports the library with it. (The serving parent of
several workers never records anything, so it does not matter when it imported the library.)

With one worker the normal in-memory registry is used instead: no file per metric update, no
directory to manage, and the process collectors (CPU, memory, file descriptors), which
multiprocess mode cannot export, are there. One worker per container, scaled by containers, is
the recommended deployment, so that is also the common case.

This module does not import prometheus_client at module level, so that using it never decides
the library's mode.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def prepare(workers: int, metrics_enabled: bool = True) -> Callable[[], None]:
    """Set up the directory for `workers` processes; returns what to call once they have all exited.

    An operator's own `PROMETHEUS_MULTIPROC_DIR` is used (and wiped: values of processes from an
    earlier run would otherwise be summed in forever); otherwise a fresh private directory is made,
    so that two gateways on one machine never share one.
    """
    if os.environ.get(ENV) == "":
        del os.environ[ENV]  # an empty value is no directory: treat it as unset
    if not metrics_enabled or (workers <= 1 and not enabled()):
        return _nothing
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        wipe(path)
        return _nothing
    made = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[ENV] = made

    def cleanup() -> None:
        os.environ.pop(ENV, None)
        shutil.rmtree(made, ignore_errors=True)

    return cleanup


def wipe(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.is_file() and entry.suffix == ".db":
            entry.unlink()


def worker_exited(pid: int) -> None:
    """Drop a worker's live gauges (in-flight, circuit state) once it stops serving."""
    if enabled():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _nothing() -> None:
    return None
