"""Which stage of a request a profiler's sample belongs to, by the module path of its frames.

The mapping is by path prefix, not by function, so it keeps working when functions move between
modules; when a package moves, edit `STAGES` (and look at the "gateway (unmapped)" line, which
catches any gateway module the table does not name).

A sample is a stack, outermost frame first. The frames up to the event loop's driver (`asyncio.run`
and friends) are dropped: what remains is the callback or task the loop was running, and a sample
with nothing left is the event loop's own work (polling, scheduling, the C side of uvloop). Then
the innermost frame whose path starts with a prefix in `STAGES` names the stage (the longest such
prefix for that frame), so a library the gateway calls (redis, asyncpg, prometheus_client,
logging, asyncio's streams) counts towards the gateway stage that called it, while a library that
is a stage of its own (uvicorn, starlette) is named in the table. `REFINE` then splits a stage by a
function further out on the stack (the limiter's `settle` from its `admit`). A sample that matches
nothing is "other".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# (path prefix, stage). Paths are relative to the source tree, site-packages or the standard library.
STAGES: list[tuple[str, str]] = [
    ("gateway/identity/", "auth"),
    ("gateway/accounting/limits/", "admission"),
    ("gateway/routing/", "routing"),
    ("gateway/edge/relay", "relay"),
    ("gateway/providers/streaming", "relay"),
    ("gateway/providers/", "provider adapter"),
    ("gateway/dialects/", "dialect reader/writer"),
    ("gateway/accounting/pricing", "settle"),
    ("gateway/observability/alerts/", "budget gauges and alerts"),
    ("gateway/observability/logs", "log line"),
    ("gateway/observability/", "metrics"),
    ("gateway/accounting/ledger/row", "ledger: row building"),
    ("gateway/accounting/ledger/writer", "ledger: queueing and batching"),
    ("gateway/accounting/ledger/postgres", "ledger: encoding and COPY"),
    ("gateway/accounting/ledger/sqlite", "ledger: encoding and COPY"),
    ("gateway/accounting/ledger/", "ledger: other"),
    ("gateway/plugins/", "plugins"),
    ("gateway/pipeline/", "request path (pipeline, edge)"),
    ("gateway/edge/", "request path (pipeline, edge)"),
    ("gateway/app.py", "request path (pipeline, edge)"),
    ("gateway/upstream/", "upstream client"),
    # The client before gateway/upstream/h1.py, for profiles of older trees.
    ("aiohttp/", "upstream client"),
    ("aiohappyeyeballs/", "upstream client"),
    ("yarl/", "upstream client"),
    ("multidict/", "upstream client"),
    ("uvicorn/", "HTTP server (uvicorn, httptools)"),
    ("httptools/", "HTTP server (uvicorn, httptools)"),
    ("starlette/", "framework (starlette)"),
    ("gateway/", "gateway (unmapped)"),
    ("admin/", "admin"),
]

# (stage, path prefix, function, refined stage): a sample of `stage` with a frame of `function` (a
# method of any class, too) in a module under `path prefix` anywhere on its stack belongs to `refined stage`.
REFINE: list[tuple[str, str, str, str]] = [
    ("admission", "gateway/accounting/limits/", "settle", "settle"),
    ("metrics", "gateway/observability/metrics", "budget", "budget gauges and alerts"),
    # httptools parses the upstream's responses too (gateway/upstream/h1.py), not only uvicorn's requests.
    ("HTTP server (uvicorn, httptools)", "gateway/upstream/", "data_received", "upstream client"),
]

EVENT_LOOP = "event loop (uvloop, asyncio)"
OTHER = "other"
# (path, function or None for any): the frames that drive the event loop.
LOOP_DRIVERS: list[tuple[str, str | None]] = [
    ("asyncio/runners.py", None),
    ("uvloop/__init__.py", None),
    ("asyncio/base_events.py", "run_forever"),
    ("asyncio/base_events.py", "run_until_complete"),
    ("asyncio/base_events.py", "_run_once"),
    ("asyncio/events.py", "_run"),
]
# The order stages are listed in reports: a request's way through the gateway.
ORDER = [
    "HTTP server (uvicorn, httptools)", "framework (starlette)", "request path (pipeline, edge)", "auth",
    "dialect reader/writer", "plugins", "admission", "routing", "provider adapter", "upstream client",
    "relay", "settle", "budget gauges and alerts", "ledger: row building", "ledger: queueing and batching",
    "ledger: encoding and COPY", "ledger: other", "metrics", "log line", "gateway (unmapped)", "admin",
    EVENT_LOOP, OTHER,
]  # fmt: skip

_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    path: str  # relative to the tree, site-packages or the standard library


def parse_frame(text: str, roots: Sequence[str]) -> Frame | None:
    """A py-spy frame (`function (path:line)`), its path made relative to the first root it is under;
    None for py-spy's process and thread pseudo-frames."""
    match = _FRAME.match(text)
    if match is None or text.startswith(("process ", "thread ")):
        return None
    return Frame(match["function"], relative(match["path"], roots))


def relative(path: str, roots: Sequence[str]) -> str:
    for root in roots:
        if path.startswith(root):
            return path[len(root) :].lstrip("/")
    # Outside every root (a path py-spy shortened itself): from the first package we know on.
    marker = path.find("site-packages/")
    return path[marker + len("site-packages/") :] if marker >= 0 else path


def read_collapsed(lines: Iterable[str], roots: Sequence[str]) -> Counter[tuple[Frame, ...]]:
    """py-spy's raw (collapsed) output: `frame;frame;... count` per line, outermost first."""
    stacks: Counter[tuple[Frame, ...]] = Counter()
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        text, _, count = line.rpartition(" ")
        frames = tuple(f for f in (parse_frame(t, roots) for t in text.split(";")) if f is not None)
        stacks[frames] += int(count)
    return stacks


def _driver(frame: Frame) -> bool:
    return any(frame.path.endswith(path) and function in (None, frame.function) for path, function in LOOP_DRIVERS)


def _stage_of(frame: Frame) -> str | None:
    best: tuple[int, str] | None = None
    for prefix, stage in STAGES:
        if frame.path.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), stage)
    return best[1] if best else None


def _named(frame: Frame, function: str) -> bool:
    # py-spy names a method by its qualified name (`Limiter.settle`).
    return frame.function == function or frame.function.endswith("." + function)


def attribute(stack: Sequence[Frame]) -> str:
    """The stage one sampled stack belongs to."""
    start = next((i + 1 for i in range(len(stack) - 1, -1, -1) if _driver(stack[i])), 0)
    running = stack[start:]
    if not running:
        return EVENT_LOOP
    for frame in reversed(running):
        stage = _stage_of(frame)
        if stage is None:
            continue
        for from_stage, prefix, function, refined in REFINE:
            if stage == from_stage and any(f.path.startswith(prefix) and _named(f, function) for f in running):
                return refined
        return stage
    return OTHER


def by_stage(stacks: Counter[tuple[Frame, ...]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for stack, count in stacks.items():
        counts[attribute(stack)] += count
    return counts


def hottest(stacks: Counter[tuple[Frame, ...]], top: int = 15) -> list[tuple[str, str, int]]:
    """The innermost frames with the most samples (self time): (stage, `function (path)`, samples)."""
    counts: Counter[tuple[str, str]] = Counter()
    for stack, count in stacks.items():
        if stack:
            leaf = stack[-1]
            counts[(attribute(stack), f"{leaf.function} ({leaf.path})")] += count
    return [(stage, frame, n) for (stage, frame), n in counts.most_common(top)]


def other_leaves(stacks: Counter[tuple[Frame, ...]], top: int = 8) -> list[tuple[str, int]]:
    """What "other" is made of: its samples by innermost file."""
    counts: Counter[str] = Counter()
    for stack, count in stacks.items():
        if stack and attribute(stack) == OTHER:
            counts[stack[-1].path] += count
    return counts.most_common(top)
