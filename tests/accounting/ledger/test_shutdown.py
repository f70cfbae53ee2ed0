"""SIGTERM with requests in flight: every one of them, and everything queued, is a row before exit."""

from __future__ import annotations

import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.accounting.ledger.conftest import ledger_models
from tests.accounting.ledger.helpers import rows_by_id, wait_for
from tests.procs import MASTER_KEY, FakeUpstream, Gateway

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def call(url: str, request_id: str, body: dict[str, Any]) -> tuple[int, bytes]:
    with httpx.Client(timeout=60) as http:
        response = http.post(url, json=body, headers={**AUTH, "x-request-id": request_id})
        return response.status_code, response.content


def test_sigterm_keeps_the_rows_of_in_flight_and_queued_requests(
    upstream: FakeUpstream, ledger_dsn: str, tmp_path: Path
) -> None:
    # The writer would wait an hour for a full batch: only the shutdown flush can write these rows.
    settings = {"database_url": ledger_dsn, "data_dir": str(tmp_path / "data"), "drain_seconds": 30,
                "ledger_flush_s": 3600, "ledger_batch_size": 100_000}  # fmt: skip
    gw = Gateway(tmp_path, ledger_models(upstream), settings=settings)
    url = gw.url + "/chat/completions"
    messages = [{"role": "user", "content": "keep going"}]
    queued = [f"req_term_{uuid.uuid4().hex}" for _ in range(3)]
    for request_id in queued:
        assert call(url, request_id, {"model": "priced", "messages": messages})[0] == 200
    streams = [f"req_term_{uuid.uuid4().hex}" for _ in range(4)]
    unary = [f"req_term_{uuid.uuid4().hex}" for _ in range(2)]
    stream_body = {"model": "priced", "messages": messages, "stream": True,
                   "fake": {"tokens": 40, "inter_token_ms": 25}}  # fmt: skip
    slow_body = {"model": "priced", "messages": messages, "fake": {"latency_ms": 800}}
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(call, url, i, stream_body) for i in streams]
        futures += [pool.submit(call, url, i, slow_body) for i in unary]
        # Signal only once every request has reached the upstream: all six are in flight.
        wait_for(lambda: all(upstream.requests(i) for i in streams + unary), "the requests to be in flight")
        gw.proc.send_signal(signal.SIGTERM)
        results = [f.result() for f in futures]
    assert gw.proc.wait(60) in (0, -signal.SIGTERM)
    # Drained, not cut: every in-flight request finished for its client.
    assert all(status == 200 for status, _ in results)
    assert all(body.rstrip().endswith(b"data: [DONE]") for _, body in results[:4])

    # No waiting here: the process has exited, so its rows are in the database already.
    found = rows_by_id(ledger_dsn, queued + streams + unary)
    assert {i: len(rows) for i, rows in found.items()} == {i: 1 for i in queued + streams + unary}
    for request_id in streams:
        row = found[request_id][0]
        assert (row["status"], row["cancelled"], row["completion_tokens"], row["stream"]) == (200, False, 40, True)
    for request_id in unary + queued:
        assert (found[request_id][0]["status"], found[request_id][0]["completion_tokens"]) == (200, 16)
    # Nothing had to be spilled on the way out.
    assert not any((tmp_path / "data" / "ledger-spill").glob("*"))
