"""What one request costs the services replicas share: Redis calls and CPU, PostgreSQL rows and bytes.

    python loadtests/bench_shared_costs.py [--requests 4000] [--concurrency 16]

One gateway (`--workers 1`) with the production set-up: a virtual key in a team, the key and the
team each with rpm, tpm, max_parallel and a monthly budget, the model with an rpm cap; limits in
a private redis-server (single node, and a three-master cluster), the key store and the ledger in
a private PostgreSQL database. `--requests` requests, unary and streamed alternately, then:

- Redis: calls per request by command (`INFO commandstats`), Redis CPU per request
  (`used_cpu_user + used_cpu_sys`), and how much of a Redis core a request a second takes;
- PostgreSQL: ledger rows per request (1), and the database's growth per row right after
  (`pg_database_size`; `bench_ledger_scale.py` has the per-row size at 50 million rows).

The sizing table in docs/sizing.md multiplies these by request rates.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis
import yaml
from pg import private_database
from procs import REPO, Server, free_port, start, wait_port, wait_ready
from report import cancel_on_sigterm, machine, run_and_write
from targets import MASTER_KEY, MODEL, start_fake_upstream

sys.path.insert(0, str(REPO))

RESULTS = Path(__file__).resolve().parent / "results"
# What the limit scripts call inside Redis (counted by INFO commandstats like any call).
IN_SCRIPTS = frozenset({"get", "set", "incrby", "exists", "pexpire", "pttl", "zadd", "zcard", "zrem",
                        "zremrangebyscore", "zscore", "del"})
LIMITS = {"rpm": 1_000_000, "tpm": 1_000_000_000, "max_parallel": 1000, "budget_usd": "100000",
          "budget_period": "monthly"}  # fmt: skip


async def redis_servers(workdir: Path, cluster: bool) -> tuple[list[Server], list[int]]:
    ports = [free_port() for _ in range(3 if cluster else 1)]
    servers = []
    for port in ports:
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(workdir)]  # fmt: skip
        if cluster:
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                     "--cluster-port", str(free_port())]  # fmt: skip
        servers.append(start(f"redis-{port}", argv, log_dir=workdir))
        await wait_port(servers[-1], port)
    if cluster:
        create = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
                  "--cluster-yes"]  # fmt: skip
        await asyncio.to_thread(subprocess.run, create, check=True, capture_output=True, timeout=60)
        for _ in range(300):
            if all(_cluster_ok(p) for p in ports):
                break
            await asyncio.sleep(0.1)
    return servers, ports


def _cluster_ok(port: int) -> bool:
    with redis.Redis(port=port) as client:
        return b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO")


def redis_stats(ports: list[int]) -> tuple[dict[str, int], float, int]:
    """Calls by command (those run inside scripts included), CPU seconds, and µs spent in EVALSHA."""
    calls: dict[str, int] = {}
    cpu = 0.0
    script_us = 0
    for port in ports:
        with redis.Redis(port=port) as client:
            for name, stat in client.info("commandstats").items():
                command = name.removeprefix("cmdstat_")
                calls[command] = calls.get(command, 0) + stat["calls"]
                if command == "evalsha":
                    script_us += stat["usec"]
            info = client.info("cpu")
            cpu += info["used_cpu_user"] + info["used_cpu_sys"]
    return calls, cpu, script_us


async def run_case(workdir: Path, upstream_url: str, cluster: bool, args: argparse.Namespace) -> dict[str, Any]:
    async with private_database("costs") as dsn:
        return await _measure(workdir, upstream_url, cluster, args, dsn)


async def _measure(workdir: Path, upstream_url: str, cluster: bool, args: argparse.Namespace, dsn: str
                   ) -> dict[str, Any]:  # fmt: skip
    where = workdir / ("cluster" if cluster else "single")
    where.mkdir()
    servers, ports = await redis_servers(where, cluster)
    gateway: Server | None = None
    try:
        port = free_port()
        group = {"name": MODEL, "limits": {"rpm": 1_000_000},
                 "deployments": [{"provider": "openai", "base_url": upstream_url, "model": MODEL,
                                  "price": {"input_per_mtok": "0.15", "output_per_mtok": "0.60"}}]}  # fmt: skip
        # A generous Redis deadline: on this busy machine the default 0.25 s turns scheduling delays
        # into 503s, and this run counts what Redis does per request, not how fast it answers.
        settings = {"database_url": dsn, "redis_url": f"redis://127.0.0.1:{ports[0]}/0", "redis_cluster": cluster,
                    "limits_redis_timeout_s": 2.0, "log_requests": False,
                    "data_dir": str(workdir / f"data-{port}")}  # fmt: skip
        config = workdir / f"gateway-{port}.yaml"
        config.write_text(yaml.safe_dump({"settings": settings, "models": [group]}))
        argv = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1"]  # fmt: skip
        gateway = start(f"gateway-{port}", argv, log_dir=workdir, env={"GATEWAY_MASTER_KEY": MASTER_KEY})
        base = f"http://127.0.0.1:{port}"
        await wait_ready(gateway, base + "/healthz")
        admin = {"Authorization": f"Bearer {MASTER_KEY}"}
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            team = (await client.post("/admin/api/teams", json={"name": "bench", **LIMITS}, headers=admin)).json()
            key = (await client.post("/admin/api/keys", json={"team_id": team["id"], **LIMITS}, headers=admin)).json()
            auth = {"Authorization": f"Bearer {key['key']}"}
            body = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 20}
            # Warm-up: the key cache, connections, the scripts.
            for _ in range(20):
                await client.post("/v1/chat/completions", json=body, headers=auth)
            await asyncio.sleep(0.5)
            for p in ports:
                with redis.Redis(port=p) as r:
                    r.config_resetstat()
            calls_before, cpu_before, script_before = redis_stats(ports)
            pg = await asyncpg.connect(dsn)
            rows_before = await pg.fetchval("SELECT count(*) FROM ledger_requests")
            size_before = await pg.fetchval("SELECT pg_database_size(current_database())")
            sent = 0
            statuses: Counter[int] = Counter()
            started = time.perf_counter()

            async def caller() -> None:
                nonlocal sent
                while sent < args.requests:
                    sent += 1
                    stream = sent % 2 == 0
                    response = await client.post("/v1/chat/completions", json={**body, "stream": stream},
                                                 headers=auth)  # fmt: skip
                    statuses[response.status_code] += 1

            await asyncio.gather(*(caller() for _ in range(args.concurrency)))
            seconds = time.perf_counter() - started
            await asyncio.sleep(1.0)  # the ledger's last batch, the last settles
            calls_after, cpu_after, script_after = redis_stats(ports)
            rows = await pg.fetchval("SELECT count(*) FROM ledger_requests") - rows_before
            grown = await pg.fetchval("SELECT pg_database_size(current_database())") - size_before
            await pg.close()
        n = args.requests
        delta = {cmd: calls_after.get(cmd, 0) - calls_before.get(cmd, 0) for cmd in calls_after}
        inside = {cmd: round(count / n, 2) for cmd, count in sorted(delta.items()) if count and cmd in IN_SCRIPTS}
        redis_cpu_us = 1e6 * (cpu_after - cpu_before) / n
        return {
            "redis": "cluster (3 masters)" if cluster else "single node", "requests": n,
            "requests_per_s": round(n / seconds), "statuses": {str(k): v for k, v in statuses.items()},
            "evalsha_per_request": round(delta.get("evalsha", 0) / n, 3),
            "other_calls_per_request": {cmd: round(count / n, 3) for cmd, count in sorted(delta.items())
                                        if count and cmd not in IN_SCRIPTS and cmd != "evalsha"},
            "commands_inside_scripts_per_request": inside,
            "script_us_per_request": round((script_after - script_before) / n, 1),
            "redis_cpu_us_per_request": round(redis_cpu_us, 1),
            "requests_per_s_per_redis_core": round(1e6 / redis_cpu_us) if redis_cpu_us else None,
            "ledger_rows_per_request": round(rows / n, 3),
            "database_growth_bytes_per_row": round(grown / rows) if rows else None,
        }  # fmt: skip
    finally:
        if gateway is not None:
            gateway.stop()
        for server in servers:
            server.stop()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    cancel_on_sigterm()
    started = dt.datetime.now(dt.UTC)
    cases = []
    with tempfile.TemporaryDirectory(prefix="bench-costs-") as tmp:
        workdir = Path(tmp)
        upstream, upstream_port = await start_fake_upstream(workdir, cpu=None, tokens=20)
        try:
            for cluster in (False, True):
                cases.append(await run_case(workdir, f"http://127.0.0.1:{upstream_port}/v1", cluster, args))
                print(f"  {cases[-1]}", file=sys.stderr)
        finally:
            upstream.stop()
    lines = ["| Redis | req/s (1 worker, busy machine) | EVALSHA calls per request | commands run inside them "
             "| script µs per request | Redis CPU µs per request | requests/s per Redis core | ledger rows per request "
             "| database growth, bytes per row |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]  # fmt: skip
    for c in cases:
        inside = sum(c["commands_inside_scripts_per_request"].values())
        lines.append(f"| {c['redis']} | {c['requests_per_s']} | {c['evalsha_per_request']} | {inside:.1f} "
                     f"| {c['script_us_per_request']} | {c['redis_cpu_us_per_request']} "
                     f"| {c['requests_per_s_per_redis_core']:,} | {c['ledger_rows_per_request']} "
                     f"| {c['database_growth_bytes_per_row']} |")  # fmt: skip
    lines += ["", "Redis CPU per request is the servers' own user + system CPU over the run divided by the requests "
              "(networking included; on a cluster, summed over the three masters)."]  # fmt: skip
    return {
        "benchmark": "shared-costs",
        "started": started.isoformat(timespec="seconds"),
        "plan": {"requests": args.requests, "concurrency": args.concurrency, "limits": LIMITS,
                 "set_up": "virtual key in a team, key and team: rpm, tpm, max_parallel, monthly budget; model rpm; "
                           "half the requests streamed"},
        "machine": machine(),
        "cases": cases,
        "markdown": "\n".join(lines) + "\n",
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    def header(report: dict[str, Any]) -> str:
        return f"Plan: {report['plan']}\nLoad average at start: {report['machine']['load_average']}"

    return run_and_write("shared-costs", "What a request costs Redis and PostgreSQL", bench(args), args.out,
                         quick=False, header=header)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
