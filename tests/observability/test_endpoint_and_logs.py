"""One worker: `/metrics` behind a bearer token, the in-memory registry, and the JSON request log line."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.observability.scrape import scrape
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

TOKEN = "metrics-token-5f1c"
SECRET_PROMPT = "zanzibar-quokka-prompt"


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs") / "gateway.log"


@pytest.fixture(scope="module")
def gateway_one(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory, log_path: Path) -> Iterator[Gateway]:
    models = [{"name": "gpt-test", "deployments": [deployment(upstream)]}]
    gw = Gateway(
        tmp_path_factory.mktemp("gw1"), models, settings={"metrics_token": TOKEN}, log=log_path
    )  # fmt: skip
    yield gw
    gw.close()


def request_lines(path: Path, request_id: str, seconds: float = 10) -> list[dict[str, Any]]:
    """The JSON request lines for `request_id` (written after the response, so wait for them)."""
    deadline = time.monotonic() + seconds
    while True:
        lines = []
        for raw in path.read_text().splitlines():
            if raw.startswith("{"):
                doc = json.loads(raw)
                if doc.get("msg") == "request" and doc.get("request_id") == request_id:
                    lines.append(doc)
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_metrics_need_the_token_when_one_is_set(gateway_one: Gateway) -> None:
    assert httpx.get(gateway_one.base + "/metrics").status_code == 401
    for wrong_token in ("nope", MASTER_KEY):  # a token of its own replaces the master key here
        wrong = httpx.get(gateway_one.base + "/metrics", headers={"Authorization": f"Bearer {wrong_token}"})
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"].startswith("Bearer")
    s = scrape(gateway_one.base, TOKEN)
    # One worker: the normal registry, with the process metrics multiprocess mode cannot give.
    assert "process_resident_memory_bytes" in s.names()
    assert s.total("llm_gateway_workers") == 1


def test_one_json_line_per_request_without_key_or_prompt(gateway_one: Gateway, log_path: Path) -> None:
    client = openai.OpenAI(base_url=gateway_one.url, api_key=MASTER_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": f"one {SECRET_PROMPT} three"}],
        extra_headers={"x-request-id": "log-test-1"},
    )  # fmt: skip
    raw.parse()
    [line] = request_lines(log_path, "log-test-1")
    assert line["level"] == "info" and line["logger"] == "gateway.request"
    assert line["model"] == "gpt-test" and line["deployment"] == "gpt-test/0" and line["provider"] == "openai"
    assert line["status"] == 200 and line["error_type"] is None
    assert line["key_prefix"] == "master" and line["team"] is None
    assert (line["prompt_tokens"], line["completion_tokens"]) == (3, 16)
    assert line["duration_ms"] >= line["upstream_ms"] > 0
    assert line["attempts"] == 1

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway_one.url, api_key="sk-not-the-key-77", max_retries=0).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "x"}], extra_headers={"x-request-id": "log-test-2"}
        )
    [refused] = request_lines(log_path, "log-test-2")
    assert refused["status"] == 401 and refused["key_prefix"] is None

    text = log_path.read_text()
    for secret in (MASTER_KEY, "sk-not-the-key-77", TOKEN, SECRET_PROMPT):
        assert secret not in text


def test_prompts_are_logged_only_when_turned_on(upstream: FakeUpstream, tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    models = [{"name": "gpt-test", "deployments": [deployment(upstream)]}]
    gw = Gateway(tmp_path, models, settings={"log_prompts": True, "metrics_enabled": False}, log=log)
    try:
        client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
        messages = [{"role": "user", "content": f"tell {SECRET_PROMPT}"}]
        client.chat.completions.create(model="gpt-test", messages=messages, extra_headers={"x-request-id": "log-p"})
        [line] = request_lines(log, "log-p")
        assert line["messages"] == messages
        assert MASTER_KEY not in log.read_text()
        # Metrics off: no endpoint at all.
        assert httpx.get(gw.base + "/metrics").status_code == 404
    finally:
        gw.close()


def test_metrics_are_closed_by_default_and_the_master_key_opens_them(upstream: FakeUpstream, tmp_path: Path) -> None:
    models = [{"name": "gpt-test", "deployments": [deployment(upstream)]}]
    gw = Gateway(tmp_path, models)
    try:
        response = httpx.get(gw.base + "/metrics")
        assert response.status_code == 401 and "llm_gateway" not in response.text
        assert scrape(gw.base, MASTER_KEY).total("llm_gateway_workers") == 1
    finally:
        gw.close()


def test_responses_and_messages_are_named_in_logs_and_metrics(gateway_one: Gateway, log_path: Path) -> None:
    client = openai.OpenAI(base_url=gateway_one.url, api_key=MASTER_KEY, max_retries=0)
    client.responses.create(model="gpt-test", input="one two", extra_headers={"x-request-id": "log-responses-1"})
    [line] = request_lines(log_path, "log-responses-1")
    assert (line["endpoint"], line["model"], line["status"]) == ("responses", "gpt-test", 200)
    assert line["prompt_tokens"] == 2
    # A /v1/messages request refused for its body: logged as messages, with the model it named.
    refused = httpx.post(gateway_one.base + "/v1/messages", json={"model": "gpt-test", "max_tokens": 5,
                                                                   "messages": "not a list"},
                         headers={"x-api-key": MASTER_KEY, "x-request-id": "log-messages-1"})
    assert refused.status_code == 400
    [line] = request_lines(log_path, "log-messages-1")
    assert (line["endpoint"], line["model"], line["status"]) == ("messages", "gpt-test", 400)
    s = scrape(gateway_one.base, TOKEN)
    assert s.total("llm_gateway_requests_total", route="responses", status_class="2xx") >= 1
    assert s.total("llm_gateway_requests_total", route="messages", status_class="4xx") >= 1


def test_an_unknown_path_leaves_a_line(gateway_one: Gateway, log_path: Path) -> None:
    response = httpx.post(gateway_one.url + "/no/such/thing", json={}, headers={"x-request-id": "log-unknown-1"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_url"
    [line] = request_lines(log_path, "log-unknown-1")
    assert (line["path"], line["method"], line["status"]) == ("/v1/no/such/thing", "POST", 404)


def test_stored_responses_are_read_and_deleted_with_a_line_each(gateway_one: Gateway, log_path: Path) -> None:
    client = openai.OpenAI(base_url=gateway_one.url, api_key=MASTER_KEY, max_retries=0)
    created = client.responses.create(model="gpt-test", input="keep me", extra_headers={"x-request-id": "log-st-0"})
    [made] = request_lines(log_path, "log-st-0")
    assert made["key_prefix"]
    client.responses.retrieve(created.id, extra_headers={"x-request-id": "log-st-1"})
    client.responses.input_items.list(created.id, extra_headers={"x-request-id": "log-st-2"})
    client.responses.delete(created.id, extra_headers={"x-request-id": "log-st-3"})
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id, extra_headers={"x-request-id": "log-st-4"})
    anonymous = httpx.get(f"{gateway_one.url}/responses/{created.id}", headers={"x-request-id": "log-st-5"})
    assert anonymous.status_code == 401
    expected = [("GET", f"/v1/responses/{created.id}", 200), ("GET", f"/v1/responses/{created.id}/input_items", 200),
                ("DELETE", f"/v1/responses/{created.id}", 200), ("GET", f"/v1/responses/{created.id}", 404)]
    for n, (method, path, status) in enumerate(expected, start=1):
        [line] = request_lines(log_path, f"log-st-{n}")
        assert (line["endpoint"], line["method"], line["path"], line["status"]) == ("responses", method, path, status)
        assert (line["key_prefix"], line["team"]) == (made["key_prefix"], made["team"])
    [line] = request_lines(log_path, "log-st-5")
    assert (line["method"], line["path"], line["status"], line["key_prefix"]) == (
        "GET", f"/v1/responses/{created.id}", 401, None)


def test_a_request_refused_at_authentication_names_the_model_its_body_already_gave(
        gateway_one: Gateway, log_path: Path) -> None:
    refused = httpx.post(gateway_one.base + "/v1/messages",
                         headers={"x-api-key": "sk-wrong", "x-request-id": "log-au-1"},
                         json={"model": "gpt-test", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 401
    [line] = request_lines(log_path, "log-au-1")
    assert (line["endpoint"], line["model"], line["status"], line["key_prefix"]) == ("messages", "gpt-test", 401, None)


def test_a_refused_client_is_not_waited_for_its_body(gateway_one: Gateway, log_path: Path) -> None:
    # Headers promising a body that never comes: the 401 is not held for it, and names no model.
    host, port = gateway_one.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as conn:
        conn.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: sk-wrong\r\nx-request-id: log-au-2\r\n"
                     b"content-type: application/json\r\ncontent-length: 60\r\n\r\n")
        head = conn.recv(65536)
    assert head.startswith(b"HTTP/1.1 401")
    [line] = request_lines(log_path, "log-au-2")
    assert (line["endpoint"], line["model"], line["status"]) == ("messages", None, 401)
