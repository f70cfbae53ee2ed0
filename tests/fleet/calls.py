"""Calling a gateway: one chat completion through the official SDK, whatever happens to it, as an
`Outcome`; and the admin API for keys and their live spend."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import openai

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
