"""The load generator's own ceiling: how many requests a second it can drive from one core.

    python loadtests/bench_loadgen.py [--duration 3]

The load generator runs alone on core 0, the server alone on core 1: the fake upstream (non-stream and
20-token streams) and nginx answering from its config (about as fast as a server on one core gets).
From the loadgen's CPU seconds per request comes the rate at which it alone would fill a core; wrk
against the same URLs, from the same core, shows what a C client gets.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvloop
from loadgen import chat_body, run_load
from procs import Server
from targets import MODEL, Stack, nginx, start_fake_upstream

LOADGEN_CPU, SERVER_CPU = 0, 1


async def ceiling(duration_s: float, concurrencies: list[int]) -> list[dict[str, Any]]:
    os.sched_setaffinity(0, {LOADGEN_CPU})
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as tmp:
        workdir = Path(tmp)
        upstream, port = await start_fake_upstream(workdir, cpu=SERVER_CPU, tokens=20)
        try:
            static = await nginx(Stack(f"http://127.0.0.1:{port}/v1", port, workdir, SERVER_CPU))
            assert static.server is not None
            try:
                chat = f"http://127.0.0.1:{port}/v1/chat/completions"
                cases = [
                    ("fake non-stream", chat, False, upstream),
                    ("fake stream", chat, True, upstream),
                    ("nginx return 200", static.base_url.removesuffix("/v1") + "/healthz", False, static.server),
                ]
                for name, url, stream, server in cases:
                    for concurrency in concurrencies:
                        row = await _measure(name, url, stream, server, concurrency, duration_s, workdir)
                        print(json.dumps(row), file=sys.stderr, flush=True)
                        rows.append(row)
            finally:
                static.stop()
        finally:
            upstream.stop()
    return rows


async def _measure(
    name: str, url: str, stream: bool, server: Server, concurrency: int, duration_s: float, workdir: Path
) -> dict[str, Any]:
    cpu: dict[str, float] = {}

    def on_phase(phase: str) -> None:
        cpu[phase] = server.cpu_seconds()

    body = chat_body(MODEL, stream)
    result = await run_load(url, body, {}, concurrency, duration_s, 0.5, sse=stream, on_phase=on_phase)
    loadgen_cpu = result["loadgen_cpu_pct"] / 100 * result["duration_s"]
    us_per_request = 1e6 * loadgen_cpu / max(1, result["ok"])
    return {
        "server": name,
        "concurrency": concurrency,
        "loadgen_rps": result["rps"],
        "errors": result["errors"],
        "loadgen_cpu_pct": result["loadgen_cpu_pct"],
        "server_cpu_pct": round(100 * (cpu["end"] - cpu["measure"]) / result["duration_s"], 1),
        "loadgen_us_per_request": round(us_per_request, 1),
        "loadgen_alone_rps": round(1e6 / us_per_request) if us_per_request else None,
        "wrk_rps": None if stream else _wrk(url, body, concurrency, duration_s, workdir),
    }


def _wrk(url: str, body: bytes, concurrency: int, duration_s: float, workdir: Path) -> float | None:
    if shutil.which("wrk") is None:
        return None
    script = workdir / "post.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode())}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    argv = ["taskset", "-c", str(LOADGEN_CPU), "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s"]
    out = subprocess.run([*argv, "-s", str(script), url], capture_output=True, text=True, timeout=60).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| server (core 1) | conc | loadgen rps | wrk rps | loadgen cpu% | server cpu% "
        "| loadgen µs/req | loadgen alone could do |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        wrk = "-" if r["wrk_rps"] is None else f"{r['wrk_rps']:.0f}"
        lines.append(
            f"| {r['server']} | {r['concurrency']} | {r['loadgen_rps']:.0f} | {wrk} | {r['loadgen_cpu_pct']:.0f} "
            f"| {r['server_cpu_pct']:.0f} | {r['loadgen_us_per_request']:.1f} | {r['loadgen_alone_rps']} rps |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--concurrency", default="1,16,64")
    args = parser.parse_args(argv)
    rows = uvloop.run(ceiling(args.duration, [int(c) for c in args.concurrency.split(",")]))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
