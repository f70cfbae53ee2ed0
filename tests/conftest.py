from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.dbs import create_pg_database, drop_pg_database
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment, free_port


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    yield fake
    fake.close()


@pytest.fixture(scope="session")
def gateway(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway for the tests that need no special settings."""
    models = [
        {"name": "gpt-test", "deployments": [deployment(upstream)]},
        {"name": "openai/gpt-slash", "deployments": [deployment(upstream)]},
        {"name": "slow", "deployments": [deployment(upstream, timeout_s=0.5)]},
        {"name": "down", "deployments": [{"provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1"}]},
    ]
    gw = Gateway(tmp_path_factory.mktemp("gw"), models, settings={"max_body_bytes": 64 * 1024})
    yield gw
    gw.close()


@pytest.fixture
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0)


@pytest.fixture
def aclient(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0)


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A private, empty database on the shared PostgreSQL, dropped afterwards."""
    dsn = create_pg_database()
    yield dsn
    drop_pg_database(dsn)
