"""Bodies no honest client sends: nested too deep, or abandoned half-way (issue 17, items 5 and 10)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import anthropic
import httpx
import pytest

from gateway.edge.body import MAX_JSON_DEPTH
from tests.procs import MASTER_KEY, Gateway

HEADERS = {"authorization": f"Bearer {MASTER_KEY}"}
# Past orjson's writing limit (254) and past its reading limit (1024): both used to be a 500 or a vague 400.
DEPTHS = [MAX_JSON_DEPTH + 1, 255, 600, 1024, 5000]


def nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth - 1):
        value = [value]
    return value


# Each holds one %s one level inside the body object.
_TEMPLATES = {
    "/v1/chat/completions": b'{"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "x": %s}',
    "/v1/completions": b'{"model": "gpt-test", "prompt": "hi", "x": %s}',
    "/v1/embeddings": b'{"model": "gpt-test", "input": "hi", "x": %s}',
    "/v1/messages": b'{"model": "gpt-test", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], '
                    b'"x": %s}',
    "/v1/responses": b'{"model": "gpt-test", "input": "hi", "x": %s}',
}


def deep_bodies(depth: int) -> dict[str, bytes]:
    """A body per endpoint that nests `depth` levels in all, encoded by hand: json.dumps and
    orjson refuse to write what is this deep."""
    deep = b"[" * (depth - 1) + b'"x"' + b"]" * (depth - 1)
    return {path: template % deep for path, template in _TEMPLATES.items()}


@pytest.mark.parametrize("depth", DEPTHS)
def test_json_nested_past_the_limit_is_a_400_naming_it(edge_gateway: Gateway, depth: int) -> None:
    for path, body in deep_bodies(depth).items():
        response = httpx.post(edge_gateway.base + path, content=body,
                              headers={**HEADERS, "content-type": "application/json"}, timeout=30)
        assert response.status_code == 400, (path, depth, response.text)
        error = response.json()["error"]
        assert str(MAX_JSON_DEPTH) in error["message"], (path, error)
        assert error["type"] == "invalid_request_error"


def test_json_at_the_limit_is_served(edge_gateway: Gateway) -> None:
    for path, body in deep_bodies(MAX_JSON_DEPTH).items():
        response = httpx.post(edge_gateway.base + path, content=body,
                              headers={**HEADERS, "content-type": "application/json"}, timeout=30)
        assert response.status_code == 200, (path, response.text)


def test_messages_sdk_sees_an_anthropic_error_for_deep_json(edge_gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=edge_gateway.base, api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="gpt-test", max_tokens=5, messages=[{"role": "user", "content": "hi"}],
                               extra_body={"x": nested(300)})
    assert str(MAX_JSON_DEPTH) in str(caught.value)


def test_a_client_leaving_mid_body_is_one_info_line_without_a_traceback(edge_gateway: Gateway, edge_log: Path) -> None:
    before = edge_log.read_text()
    for i in range(3):
        with socket.create_connection(("127.0.0.1", edge_gateway.port)) as sock:
            head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER_KEY}\r\n"
                    f"content-type: application/json\r\nx-request-id: gone-{i}\r\ncontent-length: 5000\r\n\r\n")
            sock.sendall(head.encode() + b'{"model": "gpt-test", "messages": [')
            time.sleep(0.2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new = edge_log.read_text()[len(before):]
        if all(f"gone-{i}" in new for i in range(3)):
            break
        time.sleep(0.1)
    new = edge_log.read_text()[len(before):]
    lines = [json.loads(line) for line in new.splitlines() if "gone-" in line and "left" in line]
    assert len(lines) == 3, new
    assert all(line["level"] == "info" and "exc" not in line for line in lines), lines
    assert "Traceback" not in new and "ClientDisconnect" not in new, new
