"""A short headless locust run of loadtests/locustfile.py against a real gateway and fake
upstream on loopback, so the load test cannot rot: every kind of request is sent, and the CSV
report shows each kind's count, time to first token and the expected errors by kind.

Two runs: with the teams' virtual keys made through the admin API (one key with a spent
budget for the over-limit requests), and with only the master key (over-limit requests then
go to loadtests/gateway.yaml's model with a spent budget).

Each user goes through the mix a fixed number of times (LOADTEST_CYCLES) and then the run
stops by itself; --run-time only bounds it."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

REPO = Path(__file__).resolve().parents[2]
LOADTESTS = REPO / "loadtests"
USERS = 4
CYCLES = 2
MIX = {"stream": 4, "chat": 3, "embeddings": 2, "failing": 1, "over_limit": 1}
NAMES = {
    "stream": "chat stream",
    "chat": "chat",
    "embeddings": "embeddings",
    "failing": "chat (failing deployment)",
    "over_limit": "chat (over limit)",
}


def virtual_keys(gateway: Gateway) -> dict[str, str]:
    """Two teams with a key each, generous limits (so the limiter runs), and a key whose budget is spent."""
    admin = httpx.Client(base_url=gateway.base + "/admin/api", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    keys = []
    with admin:
        for team_name in ("team-a", "team-b"):
            team = admin.post("/teams", json={"name": team_name, "rpm": 1_000_000, "budget_usd": "1000"})
            team.raise_for_status()
            key = admin.post("/keys", json={"name": f"{team_name}-app", "team_id": team.json()["id"],
                                            "rpm": 1_000_000, "tpm": 1_000_000_000, "max_parallel": 1000})
            key.raise_for_status()
            keys.append(f"{team_name}={key.json()['key']}")
        spent = admin.post("/keys", json={"name": "spent", "budget_usd": "0"})
        spent.raise_for_status()
    return {"LOADTEST_KEYS": ",".join(keys), "LOADTEST_LIMITED_KEYS": spent.json()["key"]}


@pytest.fixture(scope="module", params=["virtual keys", "master key"])
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("locust")
    fake = FakeUpstream("--ttft-ms", "5", "--tokens", "16", "--inter-token-ms", "2")
    gateway: Gateway | None = None
    try:
        config = yaml.safe_load((LOADTESTS / "gateway.yaml").read_text())
        for model in config["models"]:
            for deployment in model["deployments"]:
                deployment["base_url"] = deployment["base_url"].replace("http://127.0.0.1:9911/v1", fake.url)
        gateway = Gateway(tmp, config["models"], {**config.get("settings", {}), "data_dir": str(tmp)})
        keys = virtual_keys(gateway) if request.param == "virtual keys" else {"LOADTEST_KEYS": MASTER_KEY}
        # Nothing from the developer's own LOADTEST_* or LOCUST_* variables reaches this run.
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LOADTEST_", "LOCUST_"))},
            **keys,
            "LOADTEST_MIX": ",".join(f"{kind}={weight}" for kind, weight in MIX.items()),
            "LOADTEST_CYCLES": str(CYCLES),
            "LOADTEST_WAIT_S": "0",
        }
        prefix = tmp / "run"
        run = locust(gateway, env, prefix)
        # The mix's failing and over-limit requests fail on purpose: with no other failure, exit 0.
        assert run.returncode == 0, run.stderr[-3000:]
        yield {
            "stats": {(r["Type"], r["Name"]): r for r in _rows(Path(f"{prefix}_stats.csv"))},
            "failures": _rows(Path(f"{prefix}_failures.csv")),
            "exceptions": _rows(Path(f"{prefix}_exceptions.csv")),
            "log": run.stderr,
        }
    finally:
        if gateway is not None:
            gateway.close()
        fake.close()


def locust(gateway: Gateway, env: dict[str, str], prefix: Path, users: int = USERS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "locust", "--config", str(LOADTESTS / "locust.conf"),
         "-f", str(LOADTESTS / "locustfile.py"), "--host", gateway.base, "--headless",
         "--users", str(users), "--spawn-rate", str(users), "--run-time", "60s",
         "--csv", str(prefix), "--only-summary"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_failure_the_mix_does_not_intend_makes_the_run_fail(tmp_path: Path) -> None:
    fake = FakeUpstream()
    gateway = Gateway(tmp_path, [{"name": "gpt-4o-mini", "deployments": [deployment(fake)]},
                                 {"name": "spent-model", "limits": {"budget_usd": "0"},
                                  "deployments": [deployment(fake)]}])  # fmt: skip
    try:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LOADTEST_", "LOCUST_"))},
            "LOADTEST_KEYS": MASTER_KEY, "LOADTEST_CYCLES": "1", "LOADTEST_WAIT_S": "0",
            # Over-limit requests fail as intended; embeddings ask for a model nobody serves (404).
            "LOADTEST_MIX": "chat=1,over_limit=1,embeddings=1", "LOADTEST_EMBEDDING_MODEL": "no-such-model",
        }  # fmt: skip
        run = locust(gateway, env, tmp_path / "run", users=1)
    finally:
        gateway.close()
        fake.close()
    assert run.returncode == 1, run.stderr[-3000:]
    failures = {(row["Name"], row["Error"]) for row in _rows(tmp_path / "run_failures.csv")}
    assert failures == {(NAMES["embeddings"], "CatchResponseError('404 model_not_found')"),
                        (NAMES["over_limit"], "CatchResponseError('429 insufficient_quota')")}  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def expected(kind: str) -> int:
    return USERS * CYCLES * MIX[kind]


def failures_of(report: dict[str, Any], kind: str) -> dict[str, int]:
    return {row["Error"]: int(row["Occurrences"]) for row in report["failures"] if row["Name"] == NAMES[kind]}


def test_every_kind_of_request_was_sent_as_often_as_the_mix_says(report: dict[str, Any]) -> None:
    assert not report["exceptions"], report["exceptions"]
    for kind, name in NAMES.items():
        row = report["stats"].get(("POST", name))
        assert row is not None, f"no {name} requests:\n{report['log'][-2000:]}"
        assert int(row["Request Count"]) == expected(kind), name


def test_what_users_should_get_they_got(report: dict[str, Any]) -> None:
    for kind in ("stream", "chat", "embeddings"):
        assert failures_of(report, kind) == {}, kind
        assert int(report["stats"][("POST", NAMES[kind])]["Failure Count"]) == 0


def test_errors_are_reported_by_kind(report: dict[str, Any]) -> None:
    failing = failures_of(report, "failing")
    assert sum(failing.values()) == expected("failing")
    assert all(error.startswith(("CatchResponseError('502 ", "CatchResponseError('503 ")) for error in failing)
    over_limit = failures_of(report, "over_limit")
    assert over_limit == {"CatchResponseError('429 insufficient_quota')": expected("over_limit")}


def test_time_to_first_token_is_measured_within_each_stream(report: dict[str, Any]) -> None:
    ttft = report["stats"][("TTFT", NAMES["stream"])]
    stream = report["stats"][("POST", NAMES["stream"])]
    assert int(ttft["Request Count"]) == expected("stream"), "one sample per stream"
    # Each sample is taken inside its stream, so no percentile of TTFT exceeds the stream's; and
    # the fake spaces its 16 tokens at least 2 ms apart, so the first token comes well before the end.
    for percentile in ("50%", "90%", "100%"):
        assert 0 < float(ttft[percentile]) <= float(stream[percentile]), percentile
    assert float(ttft["50%"]) < float(stream["50%"])
