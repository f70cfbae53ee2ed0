"""Stream relaying over real sockets: failures mid-stream, disconnects, no buffering."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.procs import MASTER_KEY, FakeUpstream, Gateway

MESSAGES = [{"role": "user", "content": "hi there"}]
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def test_upstream_drop_mid_stream_becomes_an_error_event(client: openai.OpenAI, gateway: Gateway) -> None:
    stream = client.chat.completions.create(
        model="gpt-test", messages=MESSAGES, stream=True, extra_body={"fake": {"drop_after": 3}}
    )
    seen = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            seen.append(chunk)
    assert len(seen) >= 3  # what arrived before the drop was relayed
    assert "closed the stream" in info.value.message
    # The wire shows an OpenAI error event and a clean end of the response.
    with httpx.stream("POST", gateway.url + "/chat/completions", headers=AUTH, json={
        "model": "gpt-test", "messages": MESSAGES, "stream": True, "fake": {"drop_after": 2}}) as r:
        body = r.read()
    events = [e for e in body.split(b"\n\n") if e]
    assert events[-1].startswith(b'data: {"error":')


def test_in_band_upstream_error_reaches_the_sdk(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, stream=True, extra_body={"fake": {"error_after": 2}}
        ):
            pass


def test_client_disconnect_cancels_the_upstream_stream(gateway: Gateway, upstream: FakeUpstream) -> None:
    before = upstream.stats()["streams_cancelled"]
    body = {"model": "gpt-test", "messages": MESSAGES, "stream": True,
            "fake": {"tokens": 1000, "inter_token_ms": 50}}
    with httpx.stream("POST", gateway.url + "/chat/completions", headers=AUTH, json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                break
    # The client is gone; the upstream must see its stream closed promptly, not run to 1000 tokens.
    deadline = time.monotonic() + 5
    while upstream.stats()["streams_cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.stats()["streams_cancelled"] == before + 1


def test_disconnect_before_first_byte_cancels_too(gateway: Gateway, upstream: FakeUpstream) -> None:
    before = upstream.stats()
    body = {"model": "gpt-test", "messages": MESSAGES, "stream": True, "fake": {"ttft_ms": 3000}}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.url + "/chat/completions", headers=AUTH, json=body, timeout=0.5)
    deadline = time.monotonic() + 5
    while upstream.stats()["streams_cancelled"] == before["streams_cancelled"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.stats()["streams_cancelled"] == before["streams_cancelled"] + 1


def test_events_are_relayed_as_they_arrive(client: openai.OpenAI) -> None:
    arrivals = []
    for chunk in client.chat.completions.create(
        model="gpt-test", messages=MESSAGES, stream=True, extra_body={"fake": {"tokens": 6, "inter_token_ms": 150}}
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 6
    # Buffered to the end, every token would land at once; relayed, they keep the upstream's spacing.
    assert arrivals[-1] - arrivals[0] > 0.5
