"""Each provider fake on a real socket speaks its provider's wire format, failures included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from gateway.fake.providers import start_fake
from gateway.providers.vllm.metrics import parse_metrics
from tests.providers.helpers import openai_events

KEY = "provider-key-123"
ANTHROPIC_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
CLAUDE = {"model": "claude-x", "max_tokens": 50, "messages": [{"role": "user", "content": "alpha beta"}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "alpha beta"}]}]}


@pytest_asyncio.fixture
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    server = await start_fake(request.param, require_key=KEY)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
        yield client
    await server.close()


def _named_events(text: str) -> list[tuple[str, Any]]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            out.append((lines.get("event", ""), orjson.loads(lines["data"])))
    return out


@pytest.mark.parametrize("fake", ["anthropic"], indirect=True)
async def test_anthropic_messages_and_auth(fake: httpx.AsyncClient) -> None:
    reply = (await fake.post("/v1/messages", json=CLAUDE, headers=ANTHROPIC_HEADERS)).json()
    assert reply["type"] == "message" and reply["content"][0]["text"].startswith("alpha beta alpha")
    assert reply["usage"] == {"input_tokens": 2, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                              "output_tokens": 16}
    denied = await fake.post("/v1/messages", json=CLAUDE, headers={**ANTHROPIC_HEADERS, "x-api-key": "wrong"})
    assert denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"
    no_version = await fake.post("/v1/messages", json=CLAUDE, headers={"x-api-key": KEY})
    assert no_version.status_code == 400 and "anthropic-version" in no_version.json()["error"]["message"]
    extra = await fake.post("/v1/messages", json={**CLAUDE, "n": 2}, headers=ANTHROPIC_HEADERS)
    assert extra.json()["error"] == {"type": "invalid_request_error", "message": "n: Extra inputs are not permitted"}
    unpaired = {**CLAUDE, "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": "no result"}]}
    assert "tool_result" in (await fake.post("/v1/messages", json=unpaired, headers=ANTHROPIC_HEADERS)).text


@pytest.mark.parametrize("fake", ["anthropic"], indirect=True)
async def test_anthropic_stream_events_and_failures(fake: httpx.AsyncClient) -> None:
    body = {**CLAUDE, "stream": True, "fake": {"tool_call": {"name": "f", "arguments": '{"a": 1}'}, "tokens": 2}}
    events = _named_events((await fake.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS)).text)
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in events)
    fragments = [d["delta"]["partial_json"] for _, d in events if d.get("delta", {}).get("type") == "input_json_delta"]
    assert "".join(fragments) == '{"a": 1}'
    overloaded = await fake.post("/v1/messages", json={**CLAUDE, "fake": {"status": 529}}, headers=ANTHROPIC_HEADERS)
    assert overloaded.status_code == 529 and overloaded.json()["error"]["type"] == "overloaded_error"
    assert overloaded.headers["x-should-retry"] == "true"
    errored = await fake.post("/v1/messages", json={**CLAUDE, "stream": True, "fake": {"error_after": 2}},
                              headers=ANTHROPIC_HEADERS)
    assert _named_events(errored.text)[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                                    "message": "Overloaded"}})
    with pytest.raises(httpx.RemoteProtocolError):
        await fake.post("/v1/messages", json={**CLAUDE, "stream": True}, headers={**ANTHROPIC_HEADERS,
                                                                                  "x-fake-drop-after": "1"})
    long_prompt = {**CLAUDE, "messages": [{"role": "user", "content": "word " * 5000}]}
    too_long = await fake.post("/v1/messages", json=long_prompt, headers=ANTHROPIC_HEADERS)
    assert too_long.status_code == 400 and too_long.json()["error"]["message"].startswith("prompt is too long")
    stats = (await fake.get("/_fake/stats")).json()
    assert stats["streams_started"] == 3 and stats["requests"] == 5


@pytest.mark.parametrize("fake", ["gemini"], indirect=True)
async def test_gemini_generate_stream_and_auth(fake: httpx.AsyncClient) -> None:
    path = "/v1beta/models/gemini-x"
    reply = (await fake.post(f"{path}:generateContent", json=GEMINI, headers={"x-goog-api-key": KEY})).json()
    assert reply["candidates"][0]["finishReason"] == "STOP"
    assert reply["usageMetadata"] == {"promptTokenCount": 2, "candidatesTokenCount": 16, "totalTokenCount": 18}
    by_query = await fake.post(f"{path}:generateContent", params={"key": KEY}, json=GEMINI)
    assert by_query.status_code == 200
    bad = (await fake.post(f"{path}:generateContent", json=GEMINI, headers={"x-goog-api-key": "nope"})).json()
    assert bad["error"]["status"] == "INVALID_ARGUMENT" and bad["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert (await fake.post(f"{path}:generateContent", json=GEMINI)).status_code == 403

    sse = await fake.post(f"{path}:streamGenerateContent", params={"alt": "sse"},
                          json={**GEMINI, "fake": {"tokens": 3}}, headers={"x-goog-api-key": KEY})
    assert sse.headers["content-type"].startswith("text/event-stream") and "\r\n\r\n" in sse.text
    frames = [orjson.loads(b[len("data: "):]) for b in sse.text.split("\r\n\r\n") if b]
    assert [f["candidates"][0].get("finishReason") for f in frames] == [None, None, None, "STOP"]
    array = (await fake.post(f"{path}:streamGenerateContent", json=GEMINI, headers={"x-goog-api-key": KEY})).json()
    assert isinstance(array, list) and array[-1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize("fake", ["gemini"], indirect=True)
async def test_gemini_failures_and_embeddings(fake: httpx.AsyncClient) -> None:
    path, headers = "/v1beta/models/gemini-3-pro", {"x-goog-api-key": KEY}
    limited = await fake.post(f"{path}:generateContent", json={**GEMINI, "fake": {"status": 429, "retry_after": 9}},
                              headers=headers)
    assert limited.status_code == 429 and limited.json()["error"]["details"][0]["retryDelay"] == "9s"
    unknown = await fake.post(f"{path}:generateContent", json={**GEMINI, "temperatura": 1}, headers=headers)
    assert "Unknown name \"temperatura\"" in unknown.json()["error"]["message"]
    schema = {**GEMINI, "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
        "type": "object", "additionalProperties": False}}]}]}
    assert "additionalProperties" in (await fake.post(f"{path}:generateContent", json=schema, headers=headers)).text
    unsigned = {"contents": [*GEMINI["contents"],
                             {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                             {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}
    assert "thought_signature" in (await fake.post(f"{path}:generateContent", json=unsigned, headers=headers)).text
    errored = await fake.post(f"{path}:streamGenerateContent?alt=sse", json={**GEMINI, "fake": {"error_after": 1}},
                              headers=headers)
    assert orjson.loads(errored.text.split("\r\n\r\n")[-2][len("data: "):])["error"]["status"] == "UNAVAILABLE"
    one = (await fake.post(f"{path}:embedContent", json={"content": {"parts": [{"text": "x"}]},
                                                         "outputDimensionality": 4}, headers=headers)).json()
    assert len(one["embedding"]["values"]) == 4
    many = (await fake.post(f"{path}:batchEmbedContents", headers=headers, json={"requests": [
        {"model": "models/gemini-3-pro", "content": {"parts": [{"text": t}]}} for t in ("a", "b")]})).json()
    assert len(many["embeddings"]) == 2


@pytest.mark.parametrize("fake", ["azure"], indirect=True)
async def test_azure_deployment_urls_filter_chunk_and_errors(fake: httpx.AsyncClient) -> None:
    url = "/openai/deployments/my-gpt/chat/completions"
    body = {"messages": [{"role": "user", "content": "alpha"}]}
    params, headers = {"api-version": "2024-10-21"}, {"api-key": KEY}
    reply = (await fake.post(url, params=params, json=body, headers=headers)).json()
    assert reply["model"] == "my-gpt" and reply["prompt_filter_results"][0]["prompt_index"] == 0
    assert "content_filter_results" in reply["choices"][0]
    stream = await fake.post(url, params=params, json={**body, "stream": True}, headers=headers)
    first = openai_events(stream.text.encode())[0]
    assert first["choices"] == [] and first["id"] == "" and "prompt_filter_results" in first
    assert (await fake.post(url, json=body, headers=headers)).json()["error"]["code"] == "404"
    denied = await fake.post(url, params=params, json=body, headers={"api-key": "wrong"})
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "401"
    limited = await fake.post(url, params=params, json={**body, "fake": {"status": 429}}, headers=headers)
    assert limited.json()["error"]["code"] == "429" and limited.headers["retry-after-ms"] == "1000"
    embedded = await fake.post("/openai/deployments/emb/embeddings", params=params, json={"input": "x"},
                               headers=headers)
    assert embedded.json()["data"][0]["object"] == "embedding"


@pytest.mark.parametrize("fake", ["vllm"], indirect=True)
async def test_vllm_health_metrics_and_error_shape(fake: httpx.AsyncClient) -> None:
    assert (await fake.get("/health")).status_code == 200
    load = parse_metrics((await fake.get("/metrics")).text)
    assert load is not None and load.kv_usage == 0.0
    await fake.post("/_fake/load", json={"waiting": 3, "running": 2, "kv_usage": 0.9, "legacy_names": True,
                                         "healthy": False})
    metrics = await fake.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain") and "vllm:gpu_cache_usage_perc" in metrics.text
    load = parse_metrics(metrics.text)
    assert load is not None and (load.waiting, load.running, load.kv_usage) == (3.0, 2.0, 0.9)
    assert (await fake.get("/health")).status_code == 503
    auth = {"authorization": f"Bearer {KEY}"}
    failed = await fake.post("/v1/chat/completions", headers=auth, json={
        "model": "m", "messages": [{"role": "user", "content": "x"}], "fake": {"status": 400}})
    assert failed.json()["error"]["code"] == 400 and failed.json()["error"]["type"] == "BadRequestError"
    assert (await fake.post("/v1/chat/completions", json={"model": "m", "messages": []})).json() == {
        "error": "Unauthorized"}
