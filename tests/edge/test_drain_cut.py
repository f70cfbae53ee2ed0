"""Streams still running when the drain after SIGTERM runs out (issue 17, item 6): each gets an
in-band error and its terminator, its ledger row says cancelled, and nothing logs a traceback."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import anthropic
import httpx
import openai

from tests.accounting.ledger.helpers import wait_rows
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

# Long enough to outlast any drain here: 1000 tokens, 50 ms apart.
LONG = {"tokens": 1000, "inter_token_ms": 50}
HI = [{"role": "user", "content": "hi"}]


def test_streams_cut_at_the_end_of_the_drain(upstream: FakeUpstream, pg_dsn: str, tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    models = [{"name": "m", "deployments": [deployment(upstream)]}]
    settings = {"drain_seconds": 1, "database_url": pg_dsn, "ledger_flush_s": 0.05}
    gw = Gateway(tmp_path, models, settings=settings, log=log)
    raw_lines: list[str] = []
    outcomes: dict[str, str] = {}

    def raw_stream() -> None:
        body = {"model": "m", "messages": HI, "stream": True, "fake": LONG}
        with httpx.stream("POST", gw.url + "/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {MASTER_KEY}", "x-request-id": "cut-raw"}) as r:
            raw_lines.extend(line for line in r.iter_lines() if line)

    def sdk_stream(i: int) -> None:
        client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
        try:
            for _ in client.chat.completions.create(model="m", messages=HI, stream=True, extra_body={"fake": LONG},
                                                    extra_headers={"x-request-id": f"cut-sdk-{i}"}):  # fmt: skip
                pass
            outcomes[f"cut-sdk-{i}"] = "ended without error"
        except openai.APIError as exc:
            outcomes[f"cut-sdk-{i}"] = f"APIError: {exc.message}"

    def messages_stream() -> None:
        client = anthropic.Anthropic(base_url=gw.base, api_key=MASTER_KEY, max_retries=0)
        try:
            with client.messages.stream(model="m", max_tokens=5000, messages=HI, extra_body={"fake": LONG},
                                        extra_headers={"x-request-id": "cut-messages"}) as stream:  # fmt: skip
                for _ in stream:
                    pass
            outcomes["cut-messages"] = "ended without error"
        except anthropic.APIError as exc:
            outcomes["cut-messages"] = f"APIError: {exc.message}"

    readers = [threading.Thread(target=raw_stream), threading.Thread(target=messages_stream),
               *(threading.Thread(target=sdk_stream, args=(i,)) for i in range(3))]  # fmt: skip
    try:
        for reader in readers:
            reader.start()
        time.sleep(1.5)  # every stream under way
        gw.proc.send_signal(signal.SIGTERM)
        for reader in readers:
            reader.join(30)
        gw.proc.wait(30)
    finally:
        gw.close()
    # The raw stream: its last events are the error, then the terminator.
    assert raw_lines[-1] == "data: [DONE]", raw_lines[-3:]
    error = json.loads(raw_lines[-2][len("data:"):])["error"]
    assert error["code"] == "service_unavailable" and "shutting down" in error["message"]
    # The SDKs raise the in-band error; none sees a stream that just stops.
    assert set(outcomes) == {"cut-sdk-0", "cut-sdk-1", "cut-sdk-2", "cut-messages"}
    assert all(o.startswith("APIError") and "shutting down" in o for o in outcomes.values()), outcomes
    text = log.read_text()
    assert "Traceback" not in text and "CancelledError" not in text, text[-3000:]
    # Rows recorded after the ledger closed wait in its spill file: a fresh start replays them.
    again = Gateway(tmp_path, models, settings=settings)
    try:
        rows = wait_rows(pg_dsn, ["cut-raw", "cut-messages", *(f"cut-sdk-{i}" for i in range(3))])
    finally:
        again.close()
    assert all(row["cancelled"] is True and row["status"] == 200 for row in rows.values()), rows
