"""Run targets over every (mode, concurrency) against one fake upstream, and tabulate the results.

The proxy under test runs on `proxy_cpu`; the fake upstream and this process (the load generator) on
`load_cpu`, so the proxy never competes with the machinery that measures it. CPU use of all three is
sampled at the edges of every measured window: a side at ~100% is the bottleneck of that cell.

Every target is started before the first cell and they take turns cell by cell, for `rounds` rounds
(the order rotating each round): on a shared machine, slow drifts in its load then fall on every
target alike. With several rounds a target's cell is its median round, and a ratio to the baseline is
the median of the per-round ratios.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from loadgen import DONE, RESPONSES_DONE, chat_body, responses_body, run_load
from procs import Server, ServerFailed, core_busy_seconds
from targets import MODEL, Launcher, Running, Stack, Unavailable, start_fake_upstream

MODES = ("non-stream", "stream")
NOISY_PCT = 15.0  # other work on a core above this is marked in the table


@dataclass(frozen=True)
class Plan:
    duration_s: float = 5.0
    warmup_s: float = 1.0
    concurrencies: tuple[int, ...] = (1, 16, 64)
    modes: tuple[str, ...] = MODES
    stream_tokens: int = 20
    # The fake upstream's wait before answering (and before a stream's first event).
    upstream_latency_ms: float = 0.0
    rounds: int = 1
    proxy_cpu: int | None = 0
    load_cpu: int | None = 1
    # On a shared machine, wait (this long at most) for other work to leave the cores before each cell.
    quiet_wait_s: float = 30.0
    quiet_pct: float = 10.0
    noisy_retries: int = 2


@dataclass
class TargetResult:
    status: str = "ok"  # ok | unavailable | failed
    reason: str | None = None
    cells: list[dict[str, Any]] = field(default_factory=list)  # one per (mode, concurrency): the median round
    rounds: list[dict[str, Any]] = field(default_factory=list)  # every measured cell, with its round


async def run_matrix(plan: Plan, targets: Mapping[str, Launcher], workdir: Path) -> dict[str, TargetResult]:
    if plan.load_cpu is not None:
        os.sched_setaffinity(0, {plan.load_cpu})
    results: dict[str, TargetResult] = {}
    running: dict[str, Running] = {}
    upstream, port = await start_fake_upstream(
        workdir, cpu=plan.load_cpu, tokens=plan.stream_tokens, latency_ms=plan.upstream_latency_ms
    )
    try:
        stack = Stack(f"http://127.0.0.1:{port}/v1", port, workdir, plan.proxy_cpu)
        for name, launch in targets.items():
            results[name], started = await _start_target(name, launch, stack)
            if started is not None:
                running[name] = started
        names = list(running)
        for round_ in range(plan.rounds):
            order = names[round_ % len(names):] + names[: round_ % len(names)] if names else []
            for mode in plan.modes:
                for concurrency in plan.concurrencies:
                    for name in order:
                        if upstream.process.poll() is not None:
                            raise ServerFailed(f"the fake upstream died:\n{upstream.log_tail()}")
                        cell = await _run_quiet_cell(name, running[name], mode, concurrency, plan, upstream)
                        results[name].rounds.append({**cell, "round": round_ + 1})
    finally:
        try:
            for target in running.values():
                await target.close()
        finally:
            upstream.stop()
    for result in results.values():
        result.cells = _median_rounds(result.rounds)
    return results


async def _start_target(name: str, launch: Launcher, stack: Stack) -> tuple[TargetResult, Running | None]:
    _log(f"[{name}] starting")
    try:
        running = await launch(stack)
    except Unavailable as exc:
        _log(f"[{name}] unavailable: {exc}")
        return TargetResult("unavailable", str(exc)), None
    except Exception as exc:  # a target that cannot start is reported, not fatal to the run
        _log(f"[{name}] failed to start: {exc!r}")
        return TargetResult("failed", f"{type(exc).__name__}: {exc}"), None
    problem = await _preflight(running)
    if problem:
        _log(f"[{name}] preflight failed: {problem}")
        await running.close()
        return TargetResult("failed", problem), None
    return TargetResult(), running


def _median_rounds(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (mode, concurrency), the round with the median rps (the lower middle of an even count)."""
    by_cell: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for cell in rounds:
        by_cell.setdefault((cell["mode"], cell["concurrency"]), []).append(cell)
    return [sorted(cells, key=lambda c: c["rps"])[(len(cells) - 1) // 2] for cells in by_cell.values()]


async def _run_quiet_cell(
    name: str, running: Running, mode: str, concurrency: int, plan: Plan, upstream: Server
) -> dict[str, Any]:
    """Run a cell; run it again (up to `plan.noisy_retries` times) while other work shared its cores,
    and keep the quietest attempt."""
    attempts = []
    for attempt in range(1 + plan.noisy_retries):
        waited = await wait_for_quiet(plan.quiet_wait_s, plan.quiet_pct)
        cell = await _run_cell(running, mode, concurrency, plan, upstream)
        cell.update(target=name, attempt=attempt + 1, waited_for_quiet_s=waited)
        _log(_cell_line(cell))
        attempts.append(cell)
        if _noise(cell) <= NOISY_PCT:
            break
    return min(attempts, key=_noise)


def _noise(cell: dict[str, Any]) -> float:
    others = cell["cpu_pct"]["others"]
    return max(others.values()) if others else 0.0


def api_of(running: Running) -> tuple[str, Callable[[str, bool], bytes], bytes]:
    """The path, the request body and the end-of-stream marker of the API the target is driven by."""
    if running.api == "responses":
        return "/responses", responses_body, RESPONSES_DONE
    return "/chat/completions", chat_body, DONE


async def _preflight(running: Running) -> str | None:
    """One request per mode, so a misconfigured target fails with its answer, not a wall of errors."""
    path, body, done = api_of(running)
    url = f"{running.base_url}{path}"
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        for stream in (False, True):
            try:
                response = await client.post(url, content=body(MODEL, stream), headers=running.headers)
            except httpx.HTTPError as exc:
                return f"{'stream' if stream else 'non-stream'} request: {type(exc).__name__}: {exc}"
            if response.status_code != 200:
                mode = "stream" if stream else "non-stream"
                return f"{mode} request: {response.status_code} {response.text[:300]}"
            if stream and done not in response.content:
                return f"stream without {done.decode()}: {response.text[:300]}"
    return None


async def _run_cell(running: Running, mode: str, concurrency: int, plan: Plan, upstream: Server) -> dict[str, Any]:
    samples: dict[str, tuple[float, float, float, dict[int, float]]] = {}
    proxy = running.server

    def on_phase(phase: str) -> None:
        proxy_cpu = proxy.cpu_seconds() if proxy else 0.0
        samples[phase] = (time.perf_counter(), proxy_cpu, upstream.cpu_seconds(), core_busy_seconds())

    path, body, done = api_of(running)
    cell = await run_load(
        f"{running.base_url}{path}",
        body(MODEL, mode == "stream"),
        running.headers,
        concurrency,
        plan.duration_s,
        plan.warmup_s,
        done=done,
        on_phase=on_phase,
    )
    (t0, proxy0, up0, cores0), (t1, proxy1, up1, cores1) = samples["measure"], samples["end"]

    def pct(seconds: float) -> float:
        return round(100 * seconds / (t1 - t0), 1)

    cell["mode"] = mode
    cpu = {
        "proxy": pct(proxy1 - proxy0) if proxy else 0.0,
        "upstream": pct(up1 - up0),
        "loadgen": cell.pop("loadgen_cpu_pct") or 0.0,
    }
    cores = {core: pct(cores1[core] - cores0[core]) for core in sorted(cores1)}
    # A core's busy share less our own processes' is what else ran there (other work, and the kernel's
    # loopback softirqs): when it is large the cell measured a shared machine.
    others = None
    if plan.proxy_cpu is not None and plan.load_cpu is not None:
        others = {
            "proxy_core": round(cores[plan.proxy_cpu] - cpu["proxy"], 1),
            "load_core": round(cores[plan.load_cpu] - cpu["upstream"] - cpu["loadgen"], 1),
        }
    cell["cpu_pct"] = {**cpu, "cores": {str(c): v for c, v in cores.items()}, "others": others}
    # The proxy's CPU per answered request: unlike requests/s, it holds when other work shares the core.
    cell["proxy_us_per_request"] = round(1e6 * (proxy1 - proxy0) / cell["ok"], 1) if proxy and cell["ok"] else None
    await asyncio.sleep(0.2)  # let the closed connections settle before the next cell
    return cell


async def wait_for_quiet(limit_s: float, quiet_pct: float) -> float:
    """Seconds spent waiting until no core is busier than `quiet_pct` (bounded by `limit_s`)."""
    start = time.perf_counter()
    while True:
        before, t0 = core_busy_seconds(), time.perf_counter()
        await asyncio.sleep(0.5)
        after, t1 = core_busy_seconds(), time.perf_counter()
        busiest = max(100 * (after[c] - before[c]) / (t1 - t0) for c in after)
        waited = t1 - start - 0.5
        if busiest <= quiet_pct or waited >= limit_s:
            if waited >= 1.0:
                _log(f"  waited {waited:.0f}s for other work to leave the cores (busiest {busiest:.0f}%)")
            return round(waited, 1)


def derive(results: Mapping[str, TargetResult], baseline: str, direct: str = "direct") -> list[dict[str, Any]]:
    """Per cell: rps as a fraction of `baseline`'s; at concurrency 1, p50 added over `direct` and
    that as a multiple of what `baseline` adds. Over several rounds, the median of each round's figure."""
    rounds: dict[tuple[str, str, int], dict[int, dict[str, Any]]] = {}
    for r in results.values():
        for c in r.rounds or r.cells:
            rounds.setdefault((c["target"], c["mode"], c["concurrency"]), {})[c.get("round", 1)] = c
    derived = []
    for (target, mode, concurrency), cells in rounds.items():
        base = rounds.get((baseline, mode, concurrency), {})
        direct_cells = rounds.get((direct, mode, concurrency), {})
        row: dict[str, Any] = {"target": target, "mode": mode, "concurrency": concurrency}
        row["rps_vs_baseline"] = _median(
            _ratio(c["rps"], base[n]["rps"] if n in base else None) for n, c in cells.items())
        row["cpu_vs_baseline"] = _median(
            _ratio(c.get("proxy_us_per_request"), base[n].get("proxy_us_per_request") if n in base else None)
            for n, c in cells.items())
        if concurrency == 1 and direct_cells and target != direct:
            added, base_added = {}, {}
            for n, c in cells.items():
                if n in direct_cells:
                    floor_p50 = direct_cells[n]["latency_ms"]["p50"]
                    added[n] = _minus(c["latency_ms"]["p50"], floor_p50)
                    base_added[n] = _minus(base[n]["latency_ms"]["p50"], floor_p50) if n in base else None
            row["added_p50_ms"] = _median(added.values())
            row["added_vs_baseline"] = _median(_ratio(added[n], base_added[n]) for n in added)
        derived.append(row)
    return derived


def _median(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


def markdown(results: Mapping[str, TargetResult], derived: Iterable[dict[str, Any]], baseline: str) -> str:
    extra = {(d["target"], d["mode"], d["concurrency"]): d for d in derived}
    lines = [
        f"| target | mode | conc | rps | rps ÷ {baseline} | p50 ms | p90 ms | p99 ms | ttft p50 | ttft p99 "
        f"| errors | proxy µs/req | ÷ {baseline} | cpu% proxy / upstream / loadgen | other cpu% core 0 / 1 |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for name, result in results.items():
        if result.status != "ok":
            lines.append(f"| {name} | {result.status}: {_one_line(result.reason)} |" + " |" * 13)
            continue
        for c in result.cells:
            d = extra.get((name, c["mode"], c["concurrency"]), {})
            cpu, latency, ttft = c["cpu_pct"], c["latency_ms"], c["ttft_ms"]
            row = [
                name, c["mode"], c["concurrency"], f"{c['rps']:.0f}", _fmt(d.get("rps_vs_baseline")),
                _fmt(latency["p50"]), _fmt(latency["p90"]), _fmt(latency["p99"]),
                _fmt(ttft["p50"]), _fmt(ttft["p99"]), c["errors"],
                _fmt(c.get("proxy_us_per_request"), 0), _fmt(d.get("cpu_vs_baseline")),
                f"{_fmt(cpu['proxy'], 0)} / {_fmt(cpu['upstream'], 0)} / {_fmt(cpu['loadgen'], 0)}",
                _others(cpu["others"]),
            ]  # fmt: skip
            lines.append("| " + " | ".join(str(v) for v in row) + " |")
    added = [d for d in derived if "added_p50_ms" in d]
    if added:
        lines += [
            "",
            f"At concurrency 1: p50 latency added over direct, and as a multiple of {baseline}'s.",
            "",
            f"| target | mode | added p50 ms | ÷ {baseline}'s added |",
            "|---|---|--:|--:|",
        ]
        lines += [
            f"| {d['target']} | {d['mode']} | {_fmt(d['added_p50_ms'])} | {_fmt(d['added_vs_baseline'])} |"
            for d in added
        ]
    return "\n".join(lines) + "\n"


def as_json(results: Mapping[str, TargetResult]) -> dict[str, Any]:
    return {name: asdict(result) for name, result in results.items()}


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0:
        return None
    return round(value / base, 3)


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _others(others: dict[str, float] | None) -> str:
    if others is None:
        return "-"
    text = f"{others['proxy_core']:.0f} / {others['load_core']:.0f}"
    return f"**{text}**" if max(others.values()) > NOISY_PCT else text


def _one_line(text: str | None) -> str:
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text or "")  # drop terminal colours from server logs
    return " ".join(plain.split())[:300].replace("|", "/")


def _cell_line(c: dict[str, Any]) -> str:
    cpu = c["cpu_pct"]
    return (
        f"  {c['target']:<20} {c['mode']:<10} c={c['concurrency']:<3} rps={c['rps']:>8.0f} "
        f"p50={_fmt(c['latency_ms']['p50'])}ms p99={_fmt(c['latency_ms']['p99'])}ms "
        f"ttft50={_fmt(c['ttft_ms']['p50'])}ms err={c['errors']} "
        f"cpu={cpu['proxy']:.0f}/{cpu['upstream']:.0f}/{cpu['loadgen']:.0f} other={_others(cpu['others'])}"
    )


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
