"""loadtests/stages.py: py-spy's samples attributed to a request's stages by module path.

The stacks are py-spy's raw output as it reads a gateway worker (`--full-filenames --nolineno`),
trimmed to the frames that matter.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"
TREE = "/src/gw"
SITE = "/venv/lib/python3.11/site-packages"
STDLIB = "/py/lib/python3.11"
ROOTS = [SITE, STDLIB, TREE]
# The frames every request task sits on: the CLI starting uvicorn, the event loop, the ASGI app.
LOOP = (
    f"<module> ({TREE}/gateway/__main__.py);_run ({TREE}/gateway/cli.py);Server.run ({SITE}/uvicorn/server.py);"
    f"Runner.run ({STDLIB}/asyncio/runners.py)"
)
TASK = (
    f"{LOOP};RequestResponseCycle.run_asgi ({SITE}/uvicorn/protocols/http/httptools_impl.py);"
    f"Front.__call__ ({TREE}/gateway/edge/front.py);Proxy.handle ({TREE}/gateway/pipeline/proxy.py)"
)
FINISH = f"{TASK};Proxy.finish ({TREE}/gateway/pipeline/proxy.py)"


@pytest.fixture(scope="module")
def stages() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loadtests_stages", LOADTESTS / "stages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


def stage(stages: ModuleType, line: str) -> str:
    stacks = stages.read_collapsed([f"{line} 1"], ROOTS)
    (stack,) = stacks
    return str(stages.attribute(stack))


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        # The loop polling or running C callbacks: nothing above its driver.
        (LOOP, "event loop (uvloop, asyncio)"),
        # Our own code in the request path.
        (f"{TASK};read_body ({TREE}/gateway/edge/body.py)", "request path (pipeline, edge)"),
        # A library the gateway calls counts for the stage that called it, however deep.
        (
            f"{TASK};KeyAuth.authenticate ({TREE}/gateway/identity/auth.py);hash_key ({TREE}/gateway/identity/keys.py);"
            f"new ({STDLIB}/hashlib.py)",
            "auth",
        ),
        (
            f"{TASK};Limiter.admit ({TREE}/gateway/accounting/limits/limiter.py);"
            f"ScriptChannel.run ({TREE}/gateway/accounting/limits/resp.py);"
            f"Timeout.__aexit__ ({STDLIB}/asyncio/timeouts.py)",
            "admission",
        ),
        # The same Redis code, reached from the limiter's settle, is settle.
        (
            f"{FINISH};Limiter.settle ({TREE}/gateway/accounting/limits/limiter.py);"
            f"RedisBackend.adjust ({TREE}/gateway/accounting/limits/redis_backend.py);"
            f"encode ({TREE}/gateway/accounting/limits/resp.py)",
            "settle",
        ),
        (
            f"{FINISH};JsonFormatter.format ({TREE}/gateway/observability/logs.py);dumps ({STDLIB}/json/__init__.py)",
            "log line",
        ),
        (
            f"{FINISH};RequestLogRecorder.record ({TREE}/gateway/observability/logs.py);"
            f"LogRecord.__init__ ({STDLIB}/logging/__init__.py)",
            "log line",
        ),
        (
            f"{FINISH};MetricsRecorder.record ({TREE}/gateway/observability/recorder.py);"
            f"MutexValue.inc ({SITE}/prometheus_client/values.py)",
            "metrics",
        ),
        (
            f"{FINISH};MetricsRecorder.record ({TREE}/gateway/observability/recorder.py);"
            f"GatewayMetrics.budget ({TREE}/gateway/observability/metrics.py);"
            f"Gauge.set ({SITE}/prometheus_client/metrics.py)",
            "budget gauges and alerts",
        ),
        (
            f"{FINISH};Ledger.record ({TREE}/gateway/accounting/ledger/writer.py);"
            f"LedgerRow.from_record ({TREE}/gateway/accounting/ledger/row.py)",
            "ledger: row building",
        ),
        (
            f"{LOOP};Ledger._run ({TREE}/gateway/accounting/ledger/writer.py);"
            f"PostgresSink.write ({TREE}/gateway/accounting/ledger/postgres.py);"
            f"Connection.copy_records_to_table ({SITE}/asyncpg/connection.py)",
            "ledger: encoding and COPY",
        ),
        # A library that is a stage of its own is named for itself, even when our code called it.
        (
            f"{TASK};UpstreamClient.send ({TREE}/gateway/upstream/client.py);"
            f"ClientSession._request ({SITE}/aiohttp/client.py)",
            "upstream client",
        ),
        (f"{LOOP};ResponseHandler.data_received ({SITE}/aiohttp/client_proto.py)", "upstream client"),
        # httptools under our upstream client parses a response, not a client's request.
        (
            f"{LOOP};Connection.data_received ({TREE}/gateway/upstream/h1.py);"
            f"HttpParser.feed_data ({SITE}/httptools/parser/parser.pyx)",
            "upstream client",
        ),
        (
            f"{TASK};pump ({TREE}/gateway/edge/relay.py);"
            f"RequestResponseCycle.send ({SITE}/uvicorn/protocols/http/httptools_impl.py)",
            "HTTP server (uvicorn, httptools)",
        ),
        (f"{TASK};pump ({TREE}/gateway/edge/relay.py)", "relay"),
        # py-spy without pausing the process sometimes reads half a stack: the innermost frames still count.
        (f"Limiter._plan ({TREE}/gateway/accounting/limits/limiter.py)", "admission"),
        # A gateway package the table does not know yet is visible as such, not lost in "other".
        (f"{TASK};Exchange.run ({TREE}/gateway/exchange/run.py)", "gateway (unmapped)"),
        (f"{LOOP};Timeout.__init__ ({STDLIB}/asyncio/timeouts.py)", "other"),
    ],
)
def test_a_stack_belongs_to_the_stage_of_its_innermost_known_module(
    stages: ModuleType, stack: str, expected: str
) -> None:
    assert stage(stages, stack) == expected


def test_paths_are_made_relative_and_pseudo_frames_dropped(stages: ModuleType) -> None:
    line = f'process 12:"python -m gateway";thread (0x7f);{TASK};parse_body ({TREE}/gateway/edge/body.py:31) 3'
    stacks = stages.read_collapsed([line], ROOTS)
    (stack,) = stacks
    assert stacks[stack] == 3
    assert stack[0].path == "gateway/__main__.py"
    assert stack[-1] == stages.Frame("parse_body", "gateway/edge/body.py")
    assert [f.path for f in stack if f.function == "Runner.run"] == ["asyncio/runners.py"]


def test_counts_add_up_by_stage_and_the_hottest_frames_name_their_stage(stages: ModuleType) -> None:
    lines = [
        f"{TASK};read_body ({TREE}/gateway/edge/body.py) 5",
        f"{TASK};parse_body ({TREE}/gateway/edge/body.py) 2",
        f"{LOOP} 4",
        f"{TASK};Limiter.admit ({TREE}/gateway/accounting/limits/limiter.py) 3",
    ]
    stacks = stages.read_collapsed(lines, ROOTS)
    counts = stages.by_stage(stacks)
    assert counts == {"request path (pipeline, edge)": 7, "event loop (uvloop, asyncio)": 4, "admission": 3}
    assert stages.hottest(stacks, 2) == [
        ("request path (pipeline, edge)", "read_body (gateway/edge/body.py)", 5),
        ("event loop (uvloop, asyncio)", "Runner.run (asyncio/runners.py)", 4),
    ]


def test_every_stage_of_the_tables_has_a_place_in_the_report_order(stages: ModuleType) -> None:
    named = {s for _, s in stages.STAGES} | {r for *_, r in stages.REFINE} | {stages.EVENT_LOOP, stages.OTHER}
    assert named <= set(stages.ORDER)
