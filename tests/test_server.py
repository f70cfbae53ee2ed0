"""The process: start-up checks, health, shedding load, workers and draining on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

MESSAGES = [{"role": "user", "content": "hi"}]


def run_serve(tmp_path: Path, config: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(path), "--port", "0"],
        capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "GATEWAY_MASTER_KEY": MASTER_KEY, **(env or {})},
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"models": [{"name": "m", "deployments": [{"provider": "openai"}]}]},
         "models[0].deployments[0].base_url: required for provider 'openai'"),
        ({"models": [{"name": "m", "deployments": [{"base_url": "ftp://x"}]}]},
         "models[0].deployments[0].base_url: Value error, must start with http:// or https://"),
        ({"models": [{"name": "m", "deployments": [{"base_url": "http://x", "provider": "nope"}]}]},
         "models[0].deployments[0].provider: unknown provider 'nope'"),
        ({"models": [{"name": "m", "deployments": [{"base_url": "http://x", "api_key_env": "NOT_SET_ANYWHERE"}]}]},
         "models[0].deployments[0].api_key_env: environment variable NOT_SET_ANYWHERE is not set"),
        ({"models": [{"name": "m", "deployments": [{"base_url": "http://x", "timeout": 3}]}]},
         "models[0].deployments[0].timeout: unknown field"),
        ({"models": [{"name": "m", "deployments": []}]}, "models[0].deployments: List should have at least 1"),
        ({"settings": {"max_inflight": 0}, "models": []}, "settings.max_inflight: Input should be greater than"),
        ("models: [unclosed", "is not valid YAML at line"),
    ],
)
def test_bad_config_stops_startup_with_one_clear_line(tmp_path: Path, config: object, expected: str) -> None:
    result = run_serve(tmp_path, config)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("config error: ")
    assert expected in lines[0]


def test_master_key_is_required(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump({"models": []}))
    result = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(path)],
                            capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "settings.master_key: required" in result.stderr


def test_health_and_readiness(gateway: Gateway) -> None:
    assert httpx.get(gateway.base + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.base + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_overload_is_answered_at_once_with_503(upstream: FakeUpstream, tmp_path: Path) -> None:
    gw = Gateway(tmp_path, [{"name": "m", "deployments": [deployment(upstream)]}], settings={"max_inflight": 2})
    try:
        async def scenario() -> tuple[list[object], float]:
            client = openai.AsyncOpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
            slow = [asyncio.ensure_future(client.chat.completions.create(
                model="m", messages=MESSAGES, extra_body={"fake": {"latency_ms": 1500}})) for _ in range(2)]
            await asyncio.sleep(0.5)
            started = time.monotonic()
            with pytest.raises(openai.InternalServerError) as info:
                await client.chat.completions.create(model="m", messages=MESSAGES)
            shed_after = time.monotonic() - started
            assert info.value.status_code == 503
            assert info.value.response.headers["retry-after"] == "1"
            assert info.value.code == "overloaded"
            return list(await asyncio.gather(*slow)), shed_after

        done, shed_after = asyncio.run(scenario())
        assert len(done) == 2
        # Shed while the two slow requests still held their slots, i.e. not queued behind them.
        assert shed_after < 1.0
        # Once they finish, capacity is back.
        client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices
    finally:
        gw.close()


def test_sigterm_drains_in_flight_streams(upstream: FakeUpstream, tmp_path: Path) -> None:
    gw = Gateway(tmp_path, [{"name": "m", "deployments": [deployment(upstream)]}], settings={"drain_seconds": 10})
    body = {"model": "m", "messages": MESSAGES, "stream": True, "fake": {"tokens": 10, "inter_token_ms": 100}}
    received: list[str] = []

    def stream() -> None:
        with httpx.stream("POST", gw.url + "/chat/completions", json=body,
                          headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as r:
            received.extend(r.iter_lines())

    reader = threading.Thread(target=stream)
    reader.start()
    time.sleep(0.4)
    gw.proc.send_signal(signal.SIGTERM)
    reader.join(30)
    # uvicorn re-raises the signal after a clean drain, so the exit status says SIGTERM.
    assert gw.proc.wait(30) in (0, -signal.SIGTERM)
    data = [line for line in received if line.startswith("data:")]
    assert data[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data:"):]) for line in data[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == " ".join(["hi"] * 10)  # every token, though SIGTERM came after the first few


def test_several_workers_share_one_port(upstream: FakeUpstream, tmp_path: Path) -> None:
    gw = Gateway(tmp_path, [{"name": "m", "deployments": [deployment(upstream)]}], workers=2)
    try:
        client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
        for _ in range(20):
            assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content
    finally:
        assert gw.close() in (0, -signal.SIGTERM)
