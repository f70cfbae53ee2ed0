"""Calling a gateway: one chat completion through the official SDK, whatever happens to it, as an
`Outcome`; and the admin API for keys and their live spend."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson

from tests.procs import MASTER_KEY

MODEL = "fleet-model"
# 8 words, which the fake upstream counts as 8 prompt tokens and the limiter estimates as
# ceil(15 / 4) + 4 = 8; with max_tokens 16 (the fake answers 16 tokens) a request reserves
# exactly what it uses: 24 tokens at $1000 per million, $0.024.
MESSAGES: list[Any] = [{"role": "user", "content": "a b c d e f g h"}]
MAX_TOKENS = 16
COST = Decimal("0.024")
PRICE = {"input_per_mtok": "1000", "output_per_mtok": "1000"}


@dataclass
class AdminApi:
    """One gateway's admin API, with the master key."""

    base: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base + "/admin/api", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                            timeout=30)  # fmt: skip

    def create_key(self, **limits: Any) -> dict[str, Any]:
        with self.client() as admin:
            response = admin.post("/keys", json=limits)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def revoke(self, key_id: str) -> None:
        with self.client() as admin:
            assert admin.post(f"/keys/{key_id}/revoke").status_code == 200

    def spent(self, key_id: str) -> Decimal:
        """The key's live spend counter (in Redis, read through the limiter)."""
        with self.client() as admin:
            return Decimal(admin.get(f"/keys/{key_id}/spend").json()["spend"]["spent_usd"])


@dataclass
class Outcome:
    sent: float
    done: float
    status: int
    code: str | None = None
    request_id: str | None = None
    replica: int | None = None
    cache: str | None = None


async def call(client: openai.AsyncOpenAI, replica: Callable[[Any], int | None] = lambda headers: None,
               **extra: Any) -> Outcome:  # fmt: skip
    """`replica(headers)`: which replica answered, for a fleet behind a load balancer."""
    sent = time.monotonic()
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, **extra)  # fmt: skip
    except openai.APIStatusError as error:
        headers = error.response.headers
        return Outcome(sent, time.monotonic(), error.status_code, error.code, headers.get("x-request-id"),
                       replica(headers))  # fmt: skip
    except openai.APIConnectionError:
        return Outcome(sent, time.monotonic(), 0, "connection")
    raw.parse()
    return Outcome(sent, time.monotonic(), raw.status_code, None, raw.headers.get("x-request-id"),
                   replica(raw.headers), raw.headers.get("x-gateway-cache"))  # fmt: skip


@dataclass
class Figures:
    """What the fleet and cluster tests measured, one line per test: printed (`pytest -s` shows
    them) and, with GATEWAY_FLEET_FIGURES=<stem>, written to <stem>.json and <stem>.md when the
    session ends (loadtests/results/fleet-*.md are such files)."""

    started: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    notes: dict[str, str] = field(default_factory=dict)

    def note(self, name: str, text: str) -> None:
        print(f"\n{name}: {text}")
        self.notes[name] = text

    def write(self, stem: Path) -> None:
        report = {"started": self.started, "load_average_at_end": os.getloadavg(), "notes": self.notes}
        stem.with_suffix(".json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        lines = [f"# Fleet and Redis Cluster tests, {self.started}", "",
                 "`GATEWAY_FLEET_FIGURES=<stem> pytest -s tests/fleet`: three replicas of two workers behind nginx on "
                 "one Redis and one PostgreSQL (test_fleet.py), two gateways on a three-master Redis Cluster with a "
                 f"replica each (test_cluster.py). Load average at the end: {report['load_average_at_end']}.", ""]
        lines += [f"- **{name}**: {text}" for name, text in self.notes.items()]
        stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
