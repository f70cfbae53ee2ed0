"""The request line as a server writes it (`LineWriter`): the formatter's JSON, one write per loop iteration."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from gateway.core.types import Usage
from gateway.observability.logs import JsonFormatter, LineWriter, RequestLogRecorder
from tests.observability.test_recorder import finished

LOGGER = logging.getLogger("test.gateway.lines")
LOGGER.setLevel(logging.INFO)


def recorder_to(stream: io.TextIOBase) -> RequestLogRecorder:
    return RequestLogRecorder(logger=LOGGER, writer=LineWriter(stream))  # type: ignore[arg-type]


class CountingStream(io.TextIOWrapper):
    """A real file under a text layer, counting the writes that reach it."""

    def __init__(self, path: Path) -> None:
        self.raw_file = open(path, "wb")  # closed by the test
        super().__init__(self.raw_file, write_through=True)
        self.writes: list[int] = []
        original = self.raw_file.write

        def write(data: bytes) -> int:
            self.writes.append(len(data))
            return original(data)

        self.raw_file.write = write  # type: ignore[method-assign]


def test_a_line_is_what_the_formatter_writes_for_the_same_request(tmp_path: Path) -> None:
    done = finished(usage=Usage(prompt_tokens=3, completion_tokens=5), cost_usd=Decimal("0.000123"))
    path = tmp_path / "log"
    with open(path, "w") as stream:
        recorder_to(stream).record(done)  # no loop: written at once
    [line] = path.read_text().splitlines()
    written = json.loads(line)

    record = logging.LogRecord(LOGGER.name, logging.INFO, __file__, 1, "request", None, None)
    record.fields = RequestLogRecorder().fields(done)
    expected = json.loads(JsonFormatter().format(record))
    assert written.keys() == expected.keys()
    assert {k: v for k, v in written.items() if k != "ts"} == {k: v for k, v in expected.items() if k != "ts"}
    assert written["cost_usd"] == "0.000123"
    assert abs(datetime.fromisoformat(written["ts"]).timestamp() - record.created) < 5
    assert written["ts"].endswith("Z") and len(written["ts"]) == len(expected["ts"])


def test_a_failed_request_is_a_warning_line(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with open(path, "w") as stream:
        recorder_to(stream).record(finished(status=502, error_type="server_error"))
    assert json.loads(path.read_text())["level"] == "warning"


def test_one_iterations_lines_leave_in_one_write_each_whole(tmp_path: Path) -> None:
    stream = CountingStream(tmp_path / "log")
    recorder = recorder_to(stream)

    async def burst() -> int:
        for i in range(200):
            recorder.record(finished(request_id=f"req_{i}"))
        before = len(stream.writes)
        await asyncio.sleep(0)  # the end of the iteration
        await asyncio.sleep(0)
        return before

    assert asyncio.run(burst()) == 0  # nothing written during the iteration
    stream.close()
    lines = (tmp_path / "log").read_text().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [f"req_{i}" for i in range(200)]
    # Writes a pipe keeps whole (PIPE_BUF), each ending at a line's end: far fewer than 200.
    assert all(size <= 4096 for size in stream.writes) and len(stream.writes) < 200 // 4
    assert os.path.getsize(tmp_path / "log") == sum(stream.writes)
