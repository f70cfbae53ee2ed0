"""A closed-loop HTTP/1.1 load generator that stays out of the way of what it measures.

Each of C keep-alive connections sends one request, waits for the whole response and sends the next,
driven from protocol callbacks (no task or future per request). Only responses that complete inside the
measured window count; the warm-up before it fills pools and caches.

    python loadtests/loadgen.py --url http://127.0.0.1:8000/v1/chat/completions -c 16 -d 5 --stream
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import orjson
import uvloop

DONE = b"data: [DONE]"
# A Responses API stream ends with this event instead.
RESPONSES_DONE = b"event: response.completed"
REQUEST_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 5.0
CONNECT_RETRY_S = 0.05


@dataclass
class Tally:
    """What the connections record; only the measured window is kept."""

    sse: bool
    window_start: float = float("inf")
    window_end: float = float("inf")
    latencies: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    missing_done: int = 0
    # What a complete stream carries: chat's [DONE], or the Responses API's last event.
    done: bytes = DONE

    def in_window(self, now: float) -> bool:
        return self.window_start <= now < self.window_end

    def ok(self, started: float, first_byte: float, now: float, status: int, saw_done: bool) -> None:
        if not self.in_window(now):
            return
        self.statuses[status] += 1
        if status != 200:
            self.errors[f"status {status}"] += 1
        elif self.sse and not saw_done:
            self.missing_done += 1
            self.errors["stream ended without [DONE]"] += 1
        else:
            self.latencies.append(now - started)
            self.ttfbs.append(first_byte - started)

    def error(self, reason: str, now: float) -> None:
        if self.in_window(now):
            self.errors[reason] += 1


class Connection(asyncio.Protocol):
    """One keep-alive connection looping one request at a time until `stop` is set."""

    def __init__(self, request: bytes, tally: Tally, should_stop: Callable[[], bool]) -> None:
        self.request = request
        self.tally = tally
        self.should_stop = should_stop
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.started = 0.0
        self.first_byte = 0.0
        self.tail = b""
        self.saw_done = False
        self.in_flight = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.send()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(f"bad response: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            self.in_flight = False
            self.tally.error("connection lost mid-request", time.perf_counter())
        if not self.closed.done():
            self.closed.set_result(None)

    # httptools callbacks

    def on_body(self, body: bytes) -> None:
        if not self.first_byte:
            self.first_byte = time.perf_counter()
        if self.tally.sse and not self.saw_done:
            # The marker can straddle two reads, so look at the end of the previous one too.
            done = self.tally.done
            self.saw_done = done in self.tail + body
            self.tail = body[-len(done) :]

    def on_message_complete(self) -> None:
        now = time.perf_counter()
        self.in_flight = False
        self.tally.ok(self.started, self.first_byte or now, now, self.parser.get_status_code(), self.saw_done)
        if not self.parser.should_keep_alive():
            self.close()
        elif self.should_stop():
            self.close()
        else:
            self.send()

    # own

    def send(self) -> None:
        assert self.transport is not None
        self.first_byte = 0.0
        self.tail = b""
        self.saw_done = False
        self.in_flight = True
        self.started = time.perf_counter()
        self.transport.write(self.request)

    def fail(self, reason: str) -> None:
        if self.in_flight:
            self.in_flight = False
            self.tally.error(reason, time.perf_counter())
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def build_request(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"only plain http:// URLs are supported, not {url!r}")
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {parts.hostname}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return parts.hostname, port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def percentile_ms(sorted_s: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of seconds, in milliseconds."""
    if not sorted_s:
        return None
    rank = max(0, min(len(sorted_s) - 1, math.ceil(pct / 100 * len(sorted_s)) - 1))
    return round(sorted_s[rank] * 1000, 3)


async def run_load(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    *,
    max_requests: int | None = None,
    sse: bool | None = None,
    done: bytes = DONE,
    on_phase: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Drive `url` with `concurrency` connections; the JSON-able summary of the measured window.

    `sse` says whether a response must carry `done` (`data: [DONE]`); by default it follows `"stream"` in `body`.
    `on_phase("measure")` and `on_phase("end")` fire at the window's edges, for sampling CPU alongside.
    """
    if sse is None:
        sse = bool(orjson.loads(body).get("stream"))
    host, port, request = build_request(url, body, headers)
    loop = asyncio.get_running_loop()
    tally = Tally(sse=sse, done=done)
    begin = time.perf_counter()
    tally.window_start = begin + warmup_s
    tally.window_end = tally.window_start + duration_s
    stopped = asyncio.Event()

    def should_stop() -> bool:
        now = time.perf_counter()
        if now >= tally.window_end:
            return True
        if max_requests is not None and len(tally.latencies) + sum(tally.errors.values()) >= max_requests:
            tally.window_end = now  # later completions no longer count
            stopped.set()
            return True
        return False

    connections: list[Connection] = []

    async def connection_loop() -> None:
        while not should_stop():
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(lambda: Connection(request, tally, should_stop), host, port),
                    timeout=REQUEST_TIMEOUT_S,
                )
            except (OSError, TimeoutError) as exc:
                tally.error(f"connect: {type(exc).__name__}", time.perf_counter())
                await asyncio.sleep(CONNECT_RETRY_S)
                continue
            connections.append(conn)
            await conn.closed
            connections.remove(conn)

    async def watchdog() -> None:
        # One timer for all connections instead of one per request.
        while True:
            await asyncio.sleep(0.5)
            now = time.perf_counter()
            for conn in list(connections):
                if conn.in_flight and now - conn.started > REQUEST_TIMEOUT_S:
                    conn.fail("timeout")

    async def measure() -> float:
        """Wait out the window; the CPU seconds this process spent inside it."""
        await asyncio.sleep(max(0.0, tally.window_start - time.perf_counter()))
        cpu_start = time.process_time()
        if on_phase:
            on_phase("measure")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), timeout=duration_s)
        tally.window_end = min(tally.window_end, time.perf_counter())
        cpu_used = time.process_time() - cpu_start
        if on_phase:
            on_phase("end")
        return cpu_used

    dog = asyncio.create_task(watchdog())
    workers = [asyncio.create_task(connection_loop()) for _ in range(concurrency)]
    try:
        cpu_used = await measure()
        # Let in-flight requests finish (they no longer count) so servers see clean closes.
        _, pending = await asyncio.wait(workers, timeout=DRAIN_TIMEOUT_S)
        for conn in list(connections):
            conn.close()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        dog.cancel()
        for task in workers:
            task.cancel()
        for conn in list(connections):
            conn.close()

    window = tally.window_end - tally.window_start
    latencies = sorted(tally.latencies)
    ttfbs = sorted(tally.ttfbs)
    errors = sum(tally.errors.values())
    return {
        "url": url,
        "stream": sse,
        "concurrency": concurrency,
        "duration_s": round(window, 3),
        "requests": len(latencies) + errors,
        "ok": len(latencies),
        "errors": errors,
        "error_kinds": dict(tally.errors.most_common(5)),
        "rps": round(len(latencies) / window, 1) if window > 0 else 0.0,
        "latency_ms": {
            "p50": percentile_ms(latencies, 50),
            "p90": percentile_ms(latencies, 90),
            "p99": percentile_ms(latencies, 99),
            "max": percentile_ms(latencies, 100),
        },
        "ttft_ms": {"p50": percentile_ms(ttfbs, 50), "p99": percentile_ms(ttfbs, 99)},
        "loadgen_cpu_pct": round(100 * cpu_used / window, 1) if window > 0 else None,
    }


def chat_body(model: str, stream: bool) -> bytes:
    return orjson.dumps({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Say hello."}]})


def responses_body(model: str, stream: bool) -> bytes:
    """The same question as `chat_body`, for OpenAI's Responses API."""
    return orjson.dumps({"model": model, "stream": stream, "input": "Say hello.", "store": False})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("-w", "--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("-n", "--max-requests", type=int, default=None)
    parser.add_argument("--stream", action="store_true", help="send a streaming chat request")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--body-file", help="send this JSON body instead of a chat request")
    parser.add_argument("-H", "--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU")
    args = parser.parse_args(argv)

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.body_file:
        with open(args.body_file, "rb") as f:
            body = f.read()
    else:
        body = chat_body(args.model, args.stream)
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    result = uvloop.run(
        run_load(
            args.url,
            body,
            headers,
            args.concurrency,
            args.duration,
            args.warmup,
            max_requests=args.max_requests,
        )
    )
    sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
