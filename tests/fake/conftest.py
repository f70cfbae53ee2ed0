from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest_asyncio

from gateway.fake.server import FakeUpstream, start_server


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with await start_server() as upstream:
        yield upstream


@pytest_asyncio.fixture
async def client(fake: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=fake.url, api_key="x", max_retries=0)
    yield sdk
    await sdk.close()
