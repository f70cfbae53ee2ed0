"""Budget alerts end to end: a virtual key's spend, settled by the limiter, crosses thresholds
and a real gateway posts to a webhook, once per threshold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest

from tests.observability.receiver import Receiver
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

# One request costs (2 + 16 tokens) * $100 per million = $0.0018.
DEAR = {"input_per_mtok": "100", "output_per_mtok": "100"}
MESSAGES = [{"role": "user", "content": "hello there"}]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    await hook.start()
    yield hook
    await hook.close()


async def test_a_keys_budget_crossings_are_posted_once_each(
    upstream: FakeUpstream, tmp_path: Path, receiver: Receiver
) -> None:
    models = [{"name": "dear", "deployments": [deployment(upstream, price=DEAR)]}]
    gw = Gateway(tmp_path, models, settings={"alert_webhooks": [receiver.url]})
    try:
        async with httpx.AsyncClient(base_url=gw.base + "/admin/api",
                                     headers={"Authorization": f"Bearer {MASTER_KEY}"}) as admin:  # fmt: skip
            team = (await admin.post("/teams", json={"name": "alerted"})).json()
            key = (await admin.post("/keys", json={"team_id": team["id"], "budget_usd": "0.004",
                                                   "budget_period": "monthly"})).json()  # fmt: skip
        client = openai.AsyncOpenAI(base_url=gw.url, api_key=key["key"], max_retries=0)
        await client.chat.completions.create(model="dear", messages=MESSAGES)  # 45%: no alert
        await client.chat.completions.create(model="dear", messages=MESSAGES)  # 90%: crosses 50 and 80
        [first] = await receiver.wait_for(1)
        await client.chat.completions.create(model="dear", messages=MESSAGES)  # 135%: crosses 100
        posts = await receiver.wait_for(2)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="dear", messages=MESSAGES)  # refused: no new crossing
        await asyncio.sleep(0.5)  # give a wrong extra post the time to arrive
    finally:
        gw.close()
    assert [p["budget_alert"]["threshold_pct"] for p in receiver.received] == [80, 100]
    alert = first["budget_alert"]
    assert (alert["scope"], alert["id"]) == ("key", key["id"])
    assert (Decimal(alert["spent_usd"]), Decimal(alert["budget_usd"])) == (Decimal("0.0036"), Decimal("0.004"))
    assert alert["period_start"] and alert["period_end"]
    assert key["id"] in first["text"] and "80% threshold" in first["text"]
    assert Decimal(posts[1]["budget_alert"]["spent_usd"]) == Decimal("0.0054")
    assert key["key"] not in str(receiver.received)
