"""Where a request's CPU goes, stage by stage: py-spy samples of the gateway worker under load.

    python loadtests/profile_stages.py [--quick] [--seconds 10] [--rate 250] [--target gateway-prod]
    python loadtests/profile_stages.py --tree /path/to/other/checkout   # the same, of another source tree

The target (by default the production configuration of loadtests/production.py) runs on core 0; the
fake upstream (20 events a stream), the load generator and py-spy on core 1. For each cell (unary
and streamed requests, at concurrency 4 and 64) the load runs for `--seconds` while py-spy samples
the worker at `--rate` Hz. Only samples of the thread holding the GIL are kept (`--gil`): that is
Python running, where "not idle" would also keep threads parked on a lock and, on a shared machine,
nearly every sample. Each sample is attributed to a stage by the module paths on its stack
(loadtests/stages.py holds the table), and a stage's CPU µs per request is its share of the samples
times the worker's measured CPU per request in the same window.

py-spy reads the worker without pausing it (`--nonblocking`): pausing it hundreds of times a second
delays Redis answers past the limiter's timeout, and the requests then fail closed with 503. Results
go to loadtests/results/stages-<date>.{json,md} (`-quick` added for `--quick`); the shares are what
this is for, the requests/s of these cells are not the core benchmark's.

Read the shares with the "GIL-held s ÷ CPU s" line: near 1, the worker had its core; well above 1,
it held the GIL while other work had the core, and the samples then lean towards the places where
the worker wakes another process (socket writes) and gets preempted. Needs py-spy
(`pip install py-spy`) and the right to ptrace the worker (root, or kernel.yama.ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import stages as st
from bench_core import gateway_targets
from loadgen import chat_body, run_load
from matrix import wait_for_quiet
from procs import REPO, Server
from report import cancel_on_sigterm, machine, run_and_write
from targets import MODEL, Running, serving

RESULTS = Path(__file__).resolve().parent / "results"
PROXY_CPU, LOAD_CPU = 0, 1
CELLS = (("non-stream", 4), ("non-stream", 64), ("stream", 4), ("stream", 64))
STREAM_TOKENS = 20
PYSPY_GRACE_S = 30.0


def pyspy_binary() -> str:
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("py-spy not found: pip install py-spy")
    return found


def roots(tree: Path) -> list[str]:
    """Where module paths start: the source tree, site-packages, the standard library (longest first)."""
    paths = sysconfig.get_paths()
    found = {str(tree.resolve()), *(paths[k] for k in ("purelib", "platlib", "stdlib", "platstdlib"))}
    return sorted(found, key=len, reverse=True)


async def profile_cell(running: Running, pid: int, mode: str, concurrency: int, args: argparse.Namespace,
                       raw: Path) -> dict[str, Any]:  # fmt: skip
    marks: dict[str, tuple[float, float]] = {}
    spy: list[asyncio.subprocess.Process] = []
    assert running.server is not None
    server: Server = running.server
    argv = ["taskset", "-c", str(LOAD_CPU), args.pyspy, "record", "--pid", str(pid), "--rate", str(args.rate),
            "--duration", str(max(1, round(args.seconds))), "--format", "raw", "--full-filenames", "--nolineno",
            "--gil", "--nonblocking", "--output", str(raw)]  # fmt: skip

    def on_phase(phase: str) -> None:
        marks[phase] = (time.perf_counter(), server.cpu_seconds())
        if phase == "measure":
            # Started from the callback so that sampling and the measured window begin together.
            spy.append(asyncio.ensure_future(asyncio.create_subprocess_exec(  # type: ignore[arg-type]
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)))

    result = await run_load(f"{running.base_url}/chat/completions", chat_body(MODEL, mode == "stream"),
                            running.headers, concurrency, args.seconds, args.warmup, on_phase=on_phase)  # fmt: skip
    process = await spy[0]  # type: ignore[misc]
    try:
        _, err = await asyncio.wait_for(process.communicate(), PYSPY_GRACE_S)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"py-spy failed ({process.returncode}): {err.decode(errors='replace')[-500:]}")
    (t0, cpu0), (t1, cpu1) = marks["measure"], marks["end"]
    cell = attribute_cell(raw, roots(args.tree), args.rate, result, cpu1 - cpu0, t1 - t0)
    print(f"  {mode:<10} c={concurrency:<3} rps={result['rps']:>7.0f} cpu={cell['cpu_pct']}% "
          f"{cell['cpu_us_per_request']} µs/req samples={cell['samples']} coverage={cell['coverage']} "
          f"err={result['errors']}", file=sys.stderr, flush=True)  # fmt: skip
    return {"mode": mode, "concurrency": concurrency, **cell}


def attribute_cell(raw: Path, roots: list[str], rate: int, result: dict[str, Any], cpu_s: float,
                   window_s: float) -> dict[str, Any]:  # fmt: skip
    """The stage table of one cell from py-spy's raw output and the load's result."""
    with open(raw) as f:
        stacks = st.read_collapsed(f, roots)
    counts = st.by_stage(stacks)
    samples = sum(counts.values())
    us_per_request = 1e6 * cpu_s / result["ok"] if result["ok"] else None
    return {
        "rps": result["rps"], "ok": result["ok"], "errors": result["errors"], "error_kinds": result["error_kinds"],
        "cpu_pct": round(100 * cpu_s / window_s, 1), "cpu_us_per_request": _round(us_per_request),
        "samples": samples,
        # Seconds the GIL was seen held over the CPU seconds counted: near 1 when the worker had its core to
        # itself, above 1 when it held the GIL while waiting for the core (a shared machine).
        "coverage": round(samples / rate / cpu_s, 2) if cpu_s else None,
        "stages": {stage: {"samples": n, "share": round(n / samples, 4),
                           "us_per_request": _round(us_per_request * n / samples if us_per_request else None)}
                   for stage, n in _ordered(counts)},
        "hottest": [{"stage": s, "frame": f, "samples": n} for s, f, n in st.hottest(stacks, 30)],
        "other": [{"path": path, "samples": n} for path, n in st.other_leaves(stacks)],
    }  # fmt: skip


def _ordered(counts: Counter[str]) -> list[tuple[str, int]]:
    known = [(s, counts[s]) for s in st.ORDER if counts.get(s)]
    return known + sorted(((s, n) for s, n in counts.items() if s not in st.ORDER), key=lambda x: -x[1])


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def profile(args: argparse.Namespace) -> dict[str, Any]:
    cancel_on_sigterm()
    os.sched_setaffinity(0, {LOAD_CPU})
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    cells = []
    launch = gateway_targets(args.tree if args.tree != REPO else None)[args.target]
    with tempfile.TemporaryDirectory(prefix="profile-stages-") as tmp:
        workdir = Path(tmp)
        async with serving(launch, workdir, proxy_cpu=PROXY_CPU, load_cpu=LOAD_CPU, tokens=STREAM_TOKENS) as running:
            assert running.server is not None
            pid = running.server.busiest_pid()
            print(f"[{args.target}] sampling pid {pid} at {args.rate} Hz, {args.seconds:g} s per cell",
                  file=sys.stderr, flush=True)  # fmt: skip
            for mode, concurrency in args.cells:
                await wait_for_quiet(args.quiet_wait, 10.0)
                raw = workdir / f"pyspy-{mode}-{concurrency}.txt"
                cells.append(await profile_cell(running, pid, mode, concurrency, args, raw))
                if args.keep_raw is not None:
                    args.keep_raw.mkdir(parents=True, exist_ok=True)
                    shutil.copy(raw, args.keep_raw / raw.name)
    return {
        "benchmark": "stages",
        "started": started.isoformat(timespec="seconds"),
        "target": args.target,
        "tree": str(args.tree),
        "plan": {"seconds": args.seconds, "warmup_s": args.warmup, "rate_hz": args.rate,
                 "stream_tokens": STREAM_TOKENS, "proxy_cpu": PROXY_CPU, "load_cpu": LOAD_CPU},
        "machine": {**machine(), "load_average_before": load_before},
        "mapping": {"stages": st.STAGES, "refine": st.REFINE, "loop_drivers": st.LOOP_DRIVERS},
        "cells": cells,
        "markdown": markdown(cells),
    }  # fmt: skip


def markdown(cells: list[dict[str, Any]]) -> str:
    heads = [f"{c['mode']} c={c['concurrency']}" for c in cells]
    lines = [
        "CPU µs per request by stage (share of the busy samples in brackets).",
        "",
        "| stage | " + " | ".join(heads) + " |",
        "|---|" + "--:|" * len(cells),
    ]
    names = list(dict.fromkeys(s for c in cells for s in c["stages"]))
    for name in names:
        row = []
        for c in cells:
            stage = c["stages"].get(name)
            row.append("-" if stage is None else f"{stage['us_per_request']} ({100 * stage['share']:.1f}%)")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    for label, key in (("**total CPU µs per request**", "cpu_us_per_request"), ("requests/s (while sampled)", "rps"),
                       ("worker CPU %", "cpu_pct"), ("busy samples", "samples"),
                       ("GIL-held s ÷ CPU s", "coverage"), ("errors", "errors")):  # fmt: skip
        lines.append(f"| {label} | " + " | ".join(str(c[key]) for c in cells) + " |")
    for c in cells:
        if c["concurrency"] != max(x["concurrency"] for x in cells):
            continue
        lines += ["", f"Hottest frames (self samples), {c['mode']} c={c['concurrency']}:", "",
                  "| samples | share | stage | frame |", "|--:|--:|---|---|"]  # fmt: skip
        lines += [f"| {h['samples']} | {100 * h['samples'] / c['samples']:.1f}% | {h['stage']} | `{h['frame']}` |"
                  for h in c["hottest"][:15]]  # fmt: skip
        if c["other"]:
            lines += ["", "\"other\" by innermost file: " + ", ".join(f"{o['path']} ({o['samples']})"
                                                                   for o in c["other"])]  # fmt: skip
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="gateway-prod", choices=list(gateway_targets()))
    parser.add_argument("--tree", type=Path, default=REPO, help="the source tree to run the gateway from")
    parser.add_argument("--seconds", type=float, default=10.0, help="sampled seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="unsampled seconds of load before each cell")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--cells", default=",".join(f"{m}:{c}" for m, c in CELLS),
                        help="comma-separated mode:concurrency pairs")  # fmt: skip
    parser.add_argument("--keep-raw", type=Path, help="copy py-spy's raw output here")
    parser.add_argument("--quiet-wait", type=float, default=30.0,
                        help="longest wait, before each cell, for other work to leave the cores")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="3 s cells, a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write stages-<date>.{json,md}")
    args = parser.parse_args(argv)
    args.cells = [(mode, int(c)) for mode, c in (cell.split(":") for cell in args.cells.split(","))]
    if args.quick:
        args.seconds, args.warmup = 3.0, 1.0
    args.tree = args.tree.resolve()
    args.pyspy = pyspy_binary()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def header(report: dict[str, Any]) -> str:
        m, p = report["machine"], report["plan"]
        before, after = (" / ".join(f"{x:.1f}" for x in m[k]) for k in ("load_average_before", "load_average"))
        return (f"Target `{report['target']}` from {report['tree']}; py-spy at {p['rate_hz']} Hz for "
                f"{p['seconds']:g} s per cell after {p['warmup_s']:g} s of load; {p['stream_tokens']} events per "
                f"stream. Load average before: {before}, after: {after}. Stages: loadtests/stages.py.")  # fmt: skip

    return run_and_write("stages", "Per-stage CPU cost", profile(args), args.out, quick=args.quick, header=header)


if __name__ == "__main__":
    sys.exit(main())
