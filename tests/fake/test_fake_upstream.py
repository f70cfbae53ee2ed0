"""The fake upstream on a real socket, driven by the official openai SDK, httpx and raw bytes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import pytest_asyncio
from openai.types.chat import ChatCompletionContentPartParam, ChatCompletionMessageParam, ChatCompletionToolParam

from gateway.fake.behaviour import Behaviour, DirectiveError, resolve
from gateway.fake.replies import Stream
from gateway.fake.server import FakeUpstream, start_server

REPO_ROOT = Path(__file__).resolve().parents[2]
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there world"}]
ECHO_16 = " ".join((["hello", "there", "world"] * 6)[:16])  # the echo of USER at the default 16 tokens


@pytest_asyncio.fixture
async def http(fake: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.url, timeout=5) as raw:
        yield raw


def _events(text: str) -> list[Any]:
    """The data payloads of an SSE body: parsed JSON, or the literal `[DONE]`."""
    payloads = [line[len("data: ") :] for line in text.split("\n\n") if line.startswith("data: ")]
    return [p if p == "[DONE]" else orjson.loads(p) for p in payloads]


async def _stream_events(http: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> list[Any]:
    response = await http.post("/chat/completions", json={"model": "m", "stream": True, **body}, headers=headers)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    return _events(response.text)


def _content(events: list[Any], index: int = 0) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for event in events
        if isinstance(event, dict)
        for choice in event.get("choices") or []
        if choice["index"] == index
    )


@pytest.mark.asyncio
async def test_chat_non_stream_content_and_usage(client: openai.AsyncOpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": "be brief"}, *USER]
    reply = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert reply.model == "gpt-4o-mini"
    assert reply.system_fingerprint == "fp_fake"
    assert reply.choices[0].message.content == ECHO_16
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (5, 16, 21)
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 0


@pytest.mark.asyncio
async def test_chat_content_parts_and_empty_prompt(client: openai.AsyncOpenAI) -> None:
    parts: list[ChatCompletionContentPartParam] = [
        {"type": "text", "text": "alpha beta"},
        {"type": "image_url", "image_url": {"url": "x"}},
    ]
    reply = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": parts}], extra_body={"fake": {"tokens": 3}}
    )
    assert reply.choices[0].message.content == "alpha beta alpha"
    reply = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": ""}], extra_body={"fake": {"tokens": 2}}
    )
    assert reply.choices[0].message.content == "tok tok"


@pytest.mark.asyncio
async def test_chat_stream_matches_non_stream_with_usage_chunk(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="m", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert {chunk.created for chunk in chunks} == {chunks[0].created}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ECHO_16
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 16)


@pytest.mark.asyncio
async def test_chat_stream_wire_shape(http: httpx.AsyncClient) -> None:
    events = await _stream_events(http, {"messages": USER, "fake": {"tokens": 3}})
    assert events[-1] == "[DONE]"
    first, *content, finish, _ = events
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [e["choices"][0]["delta"]["content"] for e in content] == ["hello", " there", " world"]
    assert finish["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all("usage" not in e for e in events[:-1]), "no include_usage: no usage key at all"


@pytest.mark.asyncio
async def test_n_choices(client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    reply = await client.chat.completions.create(model="m", messages=USER, n=2)
    assert [c.index for c in reply.choices] == [0, 1]
    assert {c.message.content for c in reply.choices} == {ECHO_16}
    assert reply.usage is not None and reply.usage.completion_tokens == 32
    events = await _stream_events(http, {"messages": USER, "n": 2})
    assert _content(events, 0) == _content(events, 1) == ECHO_16
    finishes = [c for e in events[:-1] for c in e["choices"] if c["finish_reason"]]
    assert sorted(c["index"] for c in finishes) == [0, 1]


TOOL = {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}
TOOLS: list[ChatCompletionToolParam] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
]


@pytest.mark.asyncio
async def test_tool_call_non_stream(client: openai.AsyncOpenAI) -> None:
    reply = await client.chat.completions.create(
        model="m",
        messages=USER,
        tools=TOOLS,
        extra_body={"fake": {"tool_call": TOOL}},
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert (call.function.name, call.function.arguments) == (TOOL["name"], TOOL["arguments"])


@pytest.mark.asyncio
async def test_tool_call_stream_reassembles(client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    async with client.chat.completions.stream(
        model="m",
        messages=USER,
        tools=TOOLS,
        extra_body={"fake": {"tool_call": TOOL}},
    ) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    calls = final.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    assert (calls[0].function.name, calls[0].function.arguments) == (TOOL["name"], TOOL["arguments"])

    events = await _stream_events(http, {"messages": USER}, **{"x-fake-tool-call": orjson.dumps(TOOL).decode()})
    fragments = [e["choices"][0]["delta"]["tool_calls"][0] for e in events[1:-2]]
    assert fragments[0]["function"] == {"name": "get_weather", "arguments": ""}
    assert "id" in fragments[0] and all("id" not in f for f in fragments[1:])
    assert len(fragments) == 4
    assert "".join(f["function"]["arguments"] for f in fragments) == TOOL["arguments"]


@pytest.mark.asyncio
async def test_legacy_completions(client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    reply = await client.completions.create(model="m", prompt=["one two", "three"], max_tokens=5, n=2)
    assert reply.object == "text_completion"
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    assert reply.choices[0].text == "one two one two one two one two one two one two one two one two"
    assert reply.choices[2].text == " ".join(["three"] * 16)
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 64)

    response = await http.post(
        "/completions",
        json={"model": "m", "prompt": "a b", "stream": True, "stream_options": {"include_usage": True}},
    )
    events = _events(response.text)
    assert events[-1] == "[DONE]"
    assert all(e["object"] == "text_completion" for e in events[:-1])
    assert "".join(c["text"] for e in events[:-2] for c in e["choices"]) == " ".join(["a", "b"] * 8)
    assert events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] == 16


@pytest.mark.asyncio
async def test_embeddings_float_and_base64_agree(client: openai.AsyncOpenAI) -> None:
    floats = await client.embeddings.create(model="e", input=["a b", "c"], encoding_format="float")
    decoded = await client.embeddings.create(model="e", input=["a b", "c"])  # the SDK asks for base64
    assert [d.index for d in floats.data] == [0, 1]
    assert [d.embedding for d in decoded.data] == [d.embedding for d in floats.data]
    assert len(floats.data[0].embedding) == 8
    assert all(-1 <= x <= 1 for x in floats.data[0].embedding)
    assert floats.data[0].embedding != floats.data[1].embedding
    assert (floats.usage.prompt_tokens, floats.usage.total_tokens) == (3, 3)
    sized = await client.embeddings.create(model="e", input=[[1, 2, 3]], dimensions=4)
    assert len(sized.data[0].embedding) == 4


@pytest.mark.asyncio
async def test_models(client: openai.AsyncOpenAI) -> None:
    models = [model async for model in client.models.list()]
    assert models and all(m.object == "model" and m.owned_by == "fake" for m in models)
    model = await client.models.retrieve("any-model-at-all")
    assert model.id == "any-model-at-all"


@pytest.mark.asyncio
async def test_status_directive_with_retry_after(client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/chat/completions", json={"model": "m", "messages": USER, "fake": {"status": 429, "retry_after": 1.5}}
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1.5"
    assert response.json()["error"]["type"] == "requests"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as raised:
        await client.chat.completions.create(model="m", messages=USER, extra_headers={"x-fake-status": "503"})
    assert raised.value.status_code == 503


@pytest.mark.asyncio
async def test_header_directive_wins_over_body(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/chat/completions",
        json={"model": "m", "messages": USER, "fake": {"status": 500, "content": "from body"}},
        headers={"x-fake-status": "200", "x-fake-content": "from header"},
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "from header"
    assert response.json()["usage"]["completion_tokens"] == 2


@pytest.mark.asyncio
async def test_latency_and_stream_timing(http: httpx.AsyncClient) -> None:
    started = time.perf_counter()
    response = await http.post("/chat/completions", json={"model": "m", "messages": USER, "fake": {"latency_ms": 80}})
    assert response.status_code == 200 and time.perf_counter() - started >= 0.08

    body = {"model": "m", "messages": USER, "stream": True, "fake": {"ttft_ms": 100, "tokens": 3, "inter_token_ms": 30}}
    async with http.stream("POST", "/chat/completions", json=body) as streamed:
        headers_at = time.perf_counter()
        arrivals = [time.perf_counter() async for line in streamed.aiter_lines() if '"content":"' in line]
    arrivals = arrivals[1:]  # the role chunk comes with the first token
    assert arrivals[0] - headers_at >= 0.09
    assert arrivals[2] - arrivals[0] >= 0.05


@pytest.mark.asyncio
async def test_drop_after_stream_cuts_the_connection(client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    seen: list[str] = []
    body = {"model": "m", "messages": USER, "stream": True, "fake": {"drop_after": 3}}
    with pytest.raises(httpx.RemoteProtocolError):
        async with http.stream("POST", "/chat/completions", json=body) as response:
            seen.extend([line async for line in response.aiter_lines() if line.startswith("data: ")])
    stream = await client.chat.completions.create(
        model="m", messages=USER, stream=True, extra_body={"fake": {"drop_after": 3, "inter_token_ms": 5}}
    )
    chunks = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            chunks.append(chunk)
    # The role chunk rides with the first content event; the drop comes before the finish chunk.
    assert len(chunks) == 4
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "hello there world"


@pytest.mark.asyncio
async def test_drop_after_non_stream_and_stats(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="m", messages=USER, extra_body={"fake": {"drop_after": 0}})
    stream = await client.chat.completions.create(
        model="m", messages=USER, stream=True, extra_headers={"x-fake-drop-after": "1"}
    )
    with pytest.raises(openai.APIConnectionError):
        _ = [chunk async for chunk in stream]
    stats = fake.stats.as_dict()
    assert stats["streams_started"] == 1 and stats["active_streams"] == 0
    assert stats["streams_completed"] == stats["streams_cancelled"] == 0, "a drop is the upstream's doing"


@pytest.mark.asyncio
async def test_error_after_goes_in_band(client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    stream = await client.chat.completions.create(
        model="m", messages=USER, stream=True, extra_body={"fake": {"error_after": 2}}
    )
    with pytest.raises(openai.APIError) as raised:
        _ = [chunk async for chunk in stream]
    assert "failed after 2" in raised.value.message

    events = await _stream_events(http, {"messages": USER, "fake": {"error_after": 2}})
    assert _content(events) == "hello there"
    assert events[-1]["error"]["type"] == "server_error"
    assert "[DONE]" not in events


@pytest.mark.asyncio
async def test_usage_false(client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    response = await http.post("/chat/completions", json={"model": "m", "messages": USER, "fake": {"usage": False}})
    assert "usage" not in response.json()
    stream = await client.chat.completions.create(
        model="m",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-fake-usage": "false"},
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"fake": {"no_such_directive": 1}}, {}),
        ({"fake": {"tokens": -1}}, {}),
        ({"fake": {"status": 302}}, {}),
        ({"fake": {"tool_call": {"arguments": "{}"}}}, {}),
        ({"fake": "fast"}, {}),
        ({}, {"x-fake-latency-ms": "soon"}),
        ({}, {"x-fake-usage": "maybe"}),
    ],
)
@pytest.mark.asyncio
async def test_malformed_directives_are_400(
    http: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str]
) -> None:
    response = await http.post("/chat/completions", json={"model": "m", "messages": USER, **body}, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.asyncio
async def test_request_errors(http: httpx.AsyncClient) -> None:
    bad_json = await http.post("/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    no_messages = await http.post("/chat/completions", json={"model": "m"})
    assert no_messages.status_code == 400 and no_messages.json()["error"]["param"] == "messages"
    unknown = await http.post("/nowhere", json={})
    assert unknown.status_code == 404
    assert set(unknown.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.asyncio
async def test_require_key() -> None:
    async with await start_server(require_key="secret") as fake:
        async with httpx.AsyncClient(base_url=fake.url) as http:
            denied = await http.get("/models", headers={"authorization": "Bearer wrong"})
            assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
            assert (await http.get("/models")).status_code == 401
            assert (await http.get("/models", headers={"authorization": "Bearer secret"})).status_code == 200


@pytest.mark.asyncio
async def test_server_defaults_apply_to_every_request() -> None:
    async with await start_server(behaviour=Behaviour(tokens=2, content=None, embedding_dims=3)) as fake:
        async with httpx.AsyncClient(base_url=fake.url) as http:
            chat = await http.post("/chat/completions", json={"model": "m", "messages": USER})
            assert chat.json()["choices"][0]["message"]["content"] == "hello there"
            embedded = await http.post("/embeddings", json={"model": "e", "input": "x"})
            assert len(embedded.json()["data"][0]["embedding"]) == 3


@pytest.mark.asyncio
async def test_client_disconnect_mid_stream_is_counted(fake: FakeUpstream, http: httpx.AsyncClient) -> None:
    body = {"model": "m", "messages": USER, "stream": True, "fake": {"tokens": 50, "inter_token_ms": 20}}
    async with http.stream("POST", "/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if '"content":"hello"' in line:
                break
    for _ in range(100):
        if fake.stats["streams_cancelled"]:
            break
        await asyncio.sleep(0.01)
    stats = (await http.get(f"{fake.url[: -len('/v1')]}/_fake/stats")).json()
    assert stats == {
        "requests": 1,
        "streams_started": 1,
        "streams_completed": 0,
        "streams_cancelled": 1,
        "active_streams": 0,
    }


@pytest.mark.asyncio
async def test_requests_are_recorded_by_request_id(fake: FakeUpstream, http: httpx.AsyncClient) -> None:
    control = fake.url[: -len("/v1")] + "/_fake"
    await http.post("/chat/completions", json={"model": "m", "messages": USER}, headers={"x-request-id": "abc"})
    await http.post("/embeddings", json={"model": "e", "input": "x"}, headers={"x-request-id": "other"})
    records = (await http.get(f"{control}/requests", params={"request_id": "abc"})).json()
    assert len(records) == 1
    assert records[0]["method"] == "POST" and records[0]["path"] == "/v1/chat/completions"
    assert records[0]["headers"]["x-request-id"] == "abc"
    assert records[0]["body"] == {"model": "m", "messages": USER}
    assert fake.recorded("other")[0]["body"]["input"] == "x"

    reset = await http.post(f"{control}/reset")
    assert reset.json()["requests"] == 0
    assert (await http.get(f"{control}/requests")).json() == []
    assert fake.stats.requests == 0 and len(fake.requests) == 0


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:-2])
    if b"content-length" in fields:
        return head, await reader.readexactly(int(fields[b"content-length"]))
    return head, await reader.readuntil(b"\r\n0\r\n\r\n")


def _raw_request(body: dict[str, Any], *headers: str) -> bytes:
    payload = orjson.dumps(body)
    lines = ["POST /v1/chat/completions HTTP/1.1", "host: x", f"content-length: {len(payload)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@pytest.mark.asyncio
async def test_keep_alive_and_pipelining_on_one_connection(fake: FakeUpstream) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
    request = _raw_request({"model": "m", "messages": USER})
    for _ in range(200):
        writer.write(request)
        head, body = await _read_response(reader)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert orjson.loads(body)["choices"][0]["message"]["content"] == ECHO_16

    # Pipelined: the delayed answer must still come first, then the others in order.
    writer.write(
        _raw_request({"model": "m", "messages": USER}, "x-fake-latency-ms: 50", "x-request-id: first")
        + _raw_request({"model": "m", "messages": USER, "stream": True}, "x-request-id: second")
        + _raw_request({"model": "m", "messages": USER}, "x-request-id: third")
    )
    heads = [(await _read_response(reader))[0] for _ in range(3)]
    assert [h.split(b"x-request-id: ")[1].split(b"\r\n")[0] for h in heads] == [b"first", b"second", b"third"]
    writer.close()
    await writer.wait_closed()
    assert fake.stats.requests == 203


@pytest.mark.asyncio
async def test_connection_close_is_honoured(fake: FakeUpstream) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
    writer.write(_raw_request({"model": "m", "messages": USER}, "connection: close"))
    head, _ = await _read_response(reader)
    assert b"connection: close" in head
    assert await reader.read() == b""
    writer.close()


@pytest.mark.asyncio
async def test_malformed_http_gets_400(fake: FakeUpstream) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    head, body = await _read_response(reader)
    assert head.startswith(b"HTTP/1.1 400")
    assert orjson.loads(body)["error"]["type"] == "invalid_request_error"
    writer.close()


@pytest.mark.asyncio
async def test_run_serves_until_sigterm() -> None:
    code = (
        "from gateway.fake.server import run; from gateway.fake.behaviour import Behaviour; "
        "run('127.0.0.1', 0, Behaviour(tokens=2))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, cwd=REPO_ROOT, env=env
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        prefix = "fake-upstream listening on "
        assert line.startswith(prefix + "http://127.0.0.1:") and line.endswith("/v1")
        async with httpx.AsyncClient(base_url=line[len(prefix) :]) as http:
            reply = await http.post("/chat/completions", json={"model": "m", "messages": USER})
            assert reply.json()["choices"][0]["message"]["content"] == "hello there"
            streamed = await http.post("/chat/completions", json={"model": "m", "messages": USER, "stream": True})
            assert _content(_events(streamed.text)) == "hello there"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_directive_precedence_is_header_over_body_over_defaults() -> None:
    defaults = Behaviour(tokens=4, latency_ms=5)
    resolved = resolve(defaults, {"tokens": 7, "ttft_ms": 1}, {"x-fake-tokens": "9", "x-fake-drop-after": "none"})
    assert (resolved.tokens, resolved.ttft_ms, resolved.latency_ms, resolved.drop_after) == (9, 1.0, 5, None)
    assert resolve(defaults, None, {"authorization": "x"}) is defaults
    with pytest.raises(DirectiveError):
        resolve(defaults, {"tokens": True}, {})


def test_stream_steps_place_delays_and_cuts() -> None:
    stream = Stream(b"H", [b"a", b"b", b"c"], b"T")
    paced = Behaviour(ttft_ms=10, inter_token_ms=2)
    assert stream.steps(paced) == ([(10, b"Ha"), (2, b"b"), (2, b"c"), (0, b"T")], False)
    assert stream.steps(Behaviour(drop_after=0, ttft_ms=10)) == ([(10, b"")], True)
    steps, abort = stream.steps(Behaviour(error_after=1))
    assert next(data for _, data in steps) == b"Ha" and b'"error"' in steps[1][1] and not abort
    assert stream.steps(Behaviour(drop_after=3)) == ([(0, b"Ha"), (0, b"b"), (0, b"c")], True)
