"""What the upstream client costs in CPU per request: aiohttp's (the client before) against ours.

    python loadtests/bench_upstream_client.py [--requests 20000] [--streams 5000] [--rounds 3] [--quick]

The fake upstream (gateway/fake/server.py) runs in its own process on `--fake-cpu` (1); this
process pins itself to `--cpu` (0), as `taskset -c 0` would, and on uvloop sends `--requests` unary
POSTs to /v1/chat/completions at `--concurrency` (64), then `--streams` streamed ones of `--tokens`
(20) events each read through `open()` + `chunks()`, through each client in turn, rounds interleaved
so that the machine's load falls on both alike. Figures: this process's CPU time
(time.process_time) per request, so the fake's work is not counted, but the event loop's is.

`aiohttp` is the client the gateway used before (gateway/upstream/client.py up to the change that
added this script), kept here as it was: one session, a TCPConnector with `limit`, ClientTimeout per
call, `iter_any()` for streams. `h1` is gateway.upstream.client.UpstreamClient.
Results go to loadtests/results/upstream-client-<date>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.upstream.client import UpstreamCall, UpstreamClient  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MESSAGES = [{"role": "user", "content": "Summarise the plot of Hamlet in three sentences, please."}]


class AiohttpClient:
    """The upstream client before: aiohttp, configured and called as gateway/upstream/client.py did."""

    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float, float, bool], aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                              skip_auto_headers=("User-Agent",))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _timeout(self, call: UpstreamCall, stream: bool) -> aiohttp.ClientTimeout:
        key = (call.timeout_s, call.connect_timeout_s, stream)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = (aiohttp.ClientTimeout(connect=call.connect_timeout_s, sock_read=call.timeout_s) if stream
                       else aiohttp.ClientTimeout(total=call.timeout_s, connect=call.connect_timeout_s))
            self._timeouts[key] = timeout
        return timeout

    async def _request(self, call: UpstreamCall, stream: bool) -> aiohttp.ClientResponse:
        assert self._session is not None
        return await self._session.request(call.method, call.url, data=call.body, headers=call.headers,
                                           timeout=self._timeout(call, stream), allow_redirects=False)

    async def send(self, call: UpstreamCall) -> tuple[int, dict[str, str], bytes]:
        response = await self._request(call, stream=False)
        try:
            return response.status, dict(response.headers), await response.read()
        finally:
            response.close()

    async def stream(self, call: UpstreamCall) -> int:
        response = await self._request(call, stream=True)
        dict(response.headers)
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
        response.close()
        return size


class H1Client:
    def __init__(self, max_connections: int) -> None:
        self.client = UpstreamClient(max_connections)

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    async def send(self, call: UpstreamCall) -> tuple[int, dict[str, str], bytes]:
        response = await self.client.send(call)
        return response.status, response.headers, response.body

    async def stream(self, call: UpstreamCall) -> int:
        stream = await self.client.open(call)
        size = 0
        chunks: AsyncIterator[bytes] = stream.chunks()
        async for chunk in chunks:
            size += len(chunk)
        stream.close()
        return size


def _call(url: str, stream: bool) -> UpstreamCall:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": stream})
    return UpstreamCall("POST", url, {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"},
                        body, timeout_s=60.0, connect_timeout_s=5.0, deployment_id="bench")


async def _run(total: int, concurrency: int, one: Callable[[], Awaitable[Any]]) -> float:
    """CPU µs per request for `total` calls of `one` by `concurrency` workers."""
    per_worker, extra = divmod(total, concurrency)

    async def worker(n: int) -> None:
        for _ in range(n):
            await one()

    cpu = time.process_time()
    await asyncio.gather(*(worker(per_worker + (i < extra)) for i in range(concurrency)))
    return (time.process_time() - cpu) / total * 1e6


async def measure(args: argparse.Namespace, url: str) -> dict[str, dict[str, list[float]]]:
    unary, streamed = _call(url, False), _call(url, True)
    clients: dict[str, Any] = {"aiohttp": AiohttpClient(args.concurrency), "h1": H1Client(args.concurrency)}
    figures: dict[str, dict[str, list[float]]] = {name: {"unary": [], "stream": []} for name in clients}
    for client in clients.values():
        await client.start()
        status, _, body = await client.send(unary)
        assert status == 200 and body.startswith(b"{"), (status, body[:200])
        await _run(1000, args.concurrency, lambda c=client: c.send(unary))  # warm the pool
    for round_no in range(args.rounds):
        for name, client in clients.items():
            figures[name]["unary"].append(await _run(args.requests, args.concurrency, lambda c=client: c.send(unary)))
            figures[name]["stream"].append(
                await _run(args.streams, args.concurrency, lambda c=client: c.stream(streamed)))
            print(f"round {round_no + 1} {name}: unary {figures[name]['unary'][-1]:.1f} µs, "
                  f"stream {figures[name]['stream'][-1]:.1f} µs", flush=True)
    for client in clients.values():
        await client.close()
    return figures


def start_fake(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    code = (f"from gateway.fake.server import run, Behaviour; "
            f"run('127.0.0.1', 0, Behaviour(tokens={args.tokens}))")
    fake = subprocess.Popen(["taskset", "-c", str(args.fake_cpu), sys.executable, "-c", code], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert fake.stdout is not None
    line = fake.stdout.readline()
    if "listening on" not in line:
        fake.kill()
        raise SystemExit(f"the fake upstream did not start: {line!r}")
    return fake, line.rsplit(" ", 1)[1].strip() + "/chat/completions"


def report(args: argparse.Namespace, figures: dict[str, dict[str, list[float]]]) -> str:
    med = {name: {kind: statistics.median(values) for kind, values in kinds.items()} for name, kinds in figures.items()}
    lines = [
        f"# Upstream client CPU per request, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`python loadtests/bench_upstream_client.py --requests {args.requests} --streams {args.streams} "
        f"--rounds {args.rounds} --concurrency {args.concurrency} --tokens {args.tokens}`; this process on CPU "
        f"{args.cpu}, the fake upstream on CPU {args.fake_cpu}; {platform.python_implementation()} "
        f"{platform.python_version()}, uvloop, aiohttp {aiohttp.__version__}. CPU µs of this process per request "
        "(client and event loop; the fake's work not counted), each round's figure, then the median.",
        "",
        "| client | unary, per round | unary median | stream, per round | stream median |",
        "|---|---|---|---|---|",
    ]
    for name, kinds in figures.items():
        lines.append(f"| {name} | {' / '.join(f'{v:.1f}' for v in kinds['unary'])} | {med[name]['unary']:.1f} | "
                     f"{' / '.join(f'{v:.1f}' for v in kinds['stream'])} | {med[name]['stream']:.1f} |")
    for kind in ("unary", "stream"):
        before, after = med["aiohttp"][kind], med["h1"][kind]
        # Within a round both clients ran back to back: the round's ratio is the steadier figure on a busy machine.
        ratios = [a / b for a, b in zip(figures["h1"][kind], figures["aiohttp"][kind], strict=True)]
        lines.append(f"\n{kind}: h1 saves {before - after:.1f} µs per request, {1 - after / before:.0%} of "
                     f"aiohttp's figure (medians); h1 ÷ aiohttp within each round: "
                     f"{' / '.join(f'{r:.2f}' for r in ratios)}, median {statistics.median(ratios):.2f}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--fake-cpu", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2000 requests, 500 streams, 1 round; no results file")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.streams, args.rounds = 2000, 500, 1
    os.sched_setaffinity(0, {args.cpu})
    fake, url = start_fake(args)
    try:
        figures = uvloop.run(measure(args, url))
    finally:
        fake.terminate()
        fake.wait()
    text = report(args, figures)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"upstream-client-{datetime.now(UTC):%Y-%m-%d}.md"
        path.write_text(text)
        print(f"written to {path}")


if __name__ == "__main__":
    main()
