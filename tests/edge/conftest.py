from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import FakeUpstream, Gateway, deployment


@pytest.fixture(scope="module")
def edge_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edge-logs") / "gateway.log"


@pytest.fixture(scope="module")
def edge_gateway(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory, edge_log: Path) -> Iterator[Gateway]:
    """A gateway whose log the tests read."""
    models = [{"name": "gpt-test", "deployments": [deployment(upstream)]}]
    gw = Gateway(tmp_path_factory.mktemp("edge-gw"), models, settings={"max_body_bytes": 4 * 1024 * 1024}, log=edge_log)
    yield gw
    gw.close()
