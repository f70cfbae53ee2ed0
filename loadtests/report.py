"""What every benchmark script does around its measurements: run, unwind cleanly, write results.

A benchmark is a coroutine returning a report dict with `started` (ISO time) and `markdown` (the
table); `run_and_write` runs it on uvloop, with SIGTERM unwinding like Ctrl-C so every server it
started is stopped, prints the table and writes `<name>-<date>[-quick].{json,md}`.
`matrix_report` builds that dict for the benchmarks that are one `matrix.run_matrix` table.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import uvloop
from matrix import Plan, as_json, derive, markdown, run_matrix
from targets import Launcher


def cancel_on_sigterm() -> None:
    """SIGTERM unwinds the running benchmark like Ctrl-C does."""
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()}


async def matrix_report(name: str, plan: Plan, targets: Mapping[str, Launcher], baseline: str,
                        extra: Callable[[list[dict[str, Any]]], str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run one matrix of targets and report it against `baseline`; `extra` adds lines below the table."""
    cancel_on_sigterm()
    started = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        results = await run_matrix(plan, targets, Path(tmp))
    derived = derive(results, baseline)
    return {
        "benchmark": name,
        "started": started.isoformat(timespec="seconds"),
        "plan": plan.__dict__,
        "machine": machine(),
        "baseline": baseline,
        "targets": as_json(results),
        "derived": derived,
        "markdown": markdown(results, derived, baseline) + (extra(derived) if extra else ""),
    }


def verdict(derived: list[dict[str, Any]], baseline: str, targets: Sequence[str]) -> str:
    """Lines under a matrix table: each target's added p50 at concurrency 1, and as a multiple of
    the baseline's."""
    lines = ["", f"p50 at concurrency 1 as a multiple of {baseline}'s (1.00 = no difference):", ""]
    cells = {(d["target"], d["mode"]): d for d in derived if d["concurrency"] == 1}
    for target in targets:
        for mode in ("non-stream", "stream"):
            cell = cells.get((target, mode))
            if cell is not None:
                lines.append(f"- {target} {mode}: added p50 {cell.get('added_p50_ms')} ms, "
                             f"vs {baseline}: {cell.get('added_vs_baseline')}")  # fmt: skip
    return "\n".join(lines) + "\n"


def run_and_write(name: str, title: str, bench: Awaitable[dict[str, Any]], out: Path, *, quick: bool,
                  header: Callable[[dict[str, Any]], str] | None = None) -> int:  # fmt: skip
    """`header` says how the run was made, under the title; by default, the plan."""
    try:
        report = uvloop.run(bench)  # type: ignore[arg-type]
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every server it started has been stopped", file=sys.stderr)
        return 130
    table = report.pop("markdown")
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{name}-{report['started'][:10]}{'-quick' if quick else ''}"
    stem.with_suffix(".json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    how = header(report) if header is not None else f"Plan: {report['plan']}"
    stem.with_suffix(".md").write_text(f"# {title}, {report['started']}\n\n{how}\n\n{table}")
    print(f"wrote {stem}.json and {stem}.md", file=sys.stderr)
    return 0
