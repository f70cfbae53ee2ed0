"""The official openai SDK, sync and async, through a real gateway to the fake upstream."""

from __future__ import annotations

import asyncio
import base64

import openai
import pytest

from tests.procs import FakeUpstream

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "alpha beta gamma"}]


def expected_text(words: list[str], tokens: int = 16) -> str:
    return " ".join(words[i % len(words)] for i in range(tokens))


def test_chat_non_stream(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == expected_text(["alpha", "beta", "gamma"])
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 16)
    assert raw.headers["x-request-id"].startswith("req_")


async def test_chat_non_stream_async(aclient: openai.AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert completion.choices[0].message.content == expected_text(["alpha", "beta", "gamma"])


def test_chat_stream_hides_the_usage_chunk_it_asked_for(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, stream=True, extra_headers={"x-request-id": "stream-no-usage"}
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected_text(["alpha", "beta", "gamma"])
    assert all(c.choices for c in chunks), "the usage-only chunk must not reach a client that did not ask"
    assert raw.headers["content-type"].startswith("text/event-stream")
    sent = upstream.requests("stream-no-usage")[0]["body"]
    assert sent["stream_options"] == {"include_usage": True}


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-test", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 16)


async def test_chat_stream_async(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == expected_text(["alpha", "beta", "gamma"])


def test_legacy_completions(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="gpt-test", prompt="one two", max_tokens=4)
    assert completion.choices[0].text == expected_text(["one", "two"])
    stream = client.completions.create(model="gpt-test", prompt="one two", stream=True)
    assert "".join(c.choices[0].text for c in stream if c.choices) == expected_text(["one", "two"])


def test_embeddings_base64_default_and_float(client: openai.OpenAI) -> None:
    as_floats = client.embeddings.create(model="gpt-test", input=["first", "second"], encoding_format="float")
    default = client.embeddings.create(model="gpt-test", input=["first", "second"])  # the SDK asks for base64
    assert len(as_floats.data) == 2 and len(as_floats.data[0].embedding) > 0
    for a, b in zip(as_floats.data, default.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
    assert as_floats.usage.prompt_tokens == 2


def test_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["gpt-test", "openai/gpt-slash", "slow", "down"]
    assert client.models.retrieve("openai/gpt-slash").id == "openai/gpt-slash"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_model_with_slash_is_routed(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="openai/gpt-slash", messages=MESSAGES)
    assert completion.choices[0].message.content


def test_fields_pass_through_untouched(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    extra = {
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "w",
                                                    "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "n": 2,
        "logprobs": True,
        "top_logprobs": 2,
        "seed": 42,
        "temperature": 0.3,
        "user": "end-user-7",
    }
    messages = [{"role": "user", "content": [{"type": "text", "text": "look"},
                                             {"type": "image_url", "image_url": {"url": image}}]}]
    client.chat.completions.create(
        model="gpt-test", messages=messages, extra_headers={"x-request-id": "passthrough-1"},
        extra_body={"vendor_extension": {"keep": [1, 2, 3]}}, **extra,  # type: ignore[arg-type]
    )
    sent = upstream.requests("passthrough-1")[0]["body"]
    assert sent == {"model": "fake-gpt", "messages": messages, **extra, "vendor_extension": {"keep": [1, 2, 3]}}


async def test_two_hundred_concurrent_streams(aclient: openai.AsyncOpenAI) -> None:
    async def one(i: int) -> tuple[int, str]:
        stream = await aclient.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": f"stream {i}"}], stream=True
        )
        return i, "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    results = await asyncio.gather(*(one(i) for i in range(200)))
    for i, text in results:
        assert text == expected_text(["stream", str(i)])


def test_request_id_is_kept(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, extra_headers={"x-request-id": "my-trace-42"}
    )
    assert raw.headers["x-request-id"] == "my-trace-42"

