"""Images, audio, moderations and rerank through a real gateway, with the official SDK's methods.

Each goes the way chat does: auth, allowed models, limits, routing and fallbacks, the provider
adapter, the ledger priced by what the provider bills, and OpenAI-format errors for bad input.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.fake.media import SPEECH_PIECE
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, free_port
from tests.providers.procs import ProviderFake

AUDIO = bytes(range(256)) * 188  # 48,128 bytes: 4 seconds at the fake's 16,000 bytes a second


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Any]]:
    openai_fake = FakeUpstream()
    vllm = anthropic = None
    try:
        vllm = ProviderFake("vllm")
        anthropic = ProviderFake("anthropic", require_key="anthropic-key-0123456789")
        yield {"openai": openai_fake, "vllm": vllm, "anthropic": anthropic}
    finally:
        for fake in (openai_fake, vllm, anthropic):
            if fake is not None:
                fake.close()


@pytest.fixture(scope="module")
def gateway(upstreams: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    url = upstreams["openai"].url

    def openai_model(name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "deployments": [{"provider": "openai", "base_url": url, "model": name}], **extra}

    dead = f"http://127.0.0.1:{free_port()}/v1"
    models = [
        openai_model("dall-e-3"), openai_model("dall-e-2"), openai_model("whisper-1"), openai_model("tts-1"),
        openai_model("omni-moderation-latest"),
        openai_model("dall-e-limited", limits={"rpm": 1}),
        # Nothing listens on the first: the upload must be sent again, whole, to the fallback.
        {"name": "whisper-dead", "deployments": [{"provider": "openai", "base_url": dead, "model": "whisper-1"}],
         "fallbacks": ["whisper-1"], "retries": 0},
        {"name": "reranker", "deployments": [{"provider": "vllm", "base_url": upstreams["vllm"].url,
                                              "model": "BAAI/bge-reranker-v2-m3",
                                              "price": {"input_per_mtok": "1.00"}}]},
        {"name": "claude", "deployments": [{"provider": "anthropic", "base_url": upstreams["anthropic"].url,
                                            "model": "claude-fake", "api_key_env": "TEST_ANTHROPIC_KEY"}]},
    ]
    gw = Gateway(tmp_path_factory.mktemp("endpoints"), models,
                 settings={"max_body_bytes": 8 * 1024 * 1024},
                 env={"TEST_ANTHROPIC_KEY": "anthropic-key-0123456789"})
    try:
        yield gw
    finally:
        gw.close()


@pytest.fixture
def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0)


def _ledger_row(gateway: Gateway, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        page = httpx.get(gateway.base + "/admin/api/ledger/requests", params={"limit": 200},
                         headers={"authorization": f"Bearer {MASTER_KEY}"}).json()
        rows = [row for row in page.get("data", []) if row["request_id"] == request_id]
        if rows:
            return rows[0]
        time.sleep(0.2)
    raise AssertionError(f"no ledger row for {request_id}")


def test_images_generate(sdk: openai.OpenAI, gateway: Gateway) -> None:
    result = sdk.images.generate(model="dall-e-3", prompt="a red fox", n=2, size="1024x1792",
                                 extra_headers={"x-request-id": "img-1"})
    assert result.data is not None and len(result.data) == 2
    assert all(image.url and image.url.endswith(".png") for image in result.data)
    row = _ledger_row(gateway, "img-1")
    assert row["endpoint"] == "images/generations" and row["status"] == 200
    assert Decimal(row["cost_usd"]) == 2 * Decimal("0.080")  # dall-e-3 at 1024x1792, from the price table


def test_images_as_base64(sdk: openai.OpenAI) -> None:
    result = sdk.images.generate(model="dall-e-3", prompt="a red fox", response_format="b64_json")
    assert result.data is not None and result.data[0].b64_json


def test_image_edits(sdk: openai.OpenAI, gateway: Gateway, upstreams: dict[str, Any]) -> None:
    result = sdk.images.edit(model="dall-e-2", image=("cat.png", b"\x89PNG" + bytes(5000), "image/png"),
                             prompt="add a hat", n=3, size="512x512", extra_headers={"x-request-id": "edit-1"})
    assert result.data is not None and len(result.data) == 3
    [seen] = upstreams["openai"].requests("edit-1")
    assert seen["body"]["prompt"] == "add a hat" and seen["body"]["files"][0]["size"] == 5004
    row = _ledger_row(gateway, "edit-1")
    assert row["endpoint"] == "images/edits" and Decimal(row["cost_usd"]) == 3 * Decimal("0.018")


def test_transcription_relays_the_upload_and_bills_seconds(sdk: openai.OpenAI, gateway: Gateway,
                                                           upstreams: dict[str, Any]) -> None:
    result = sdk.audio.transcriptions.create(model="whisper-1", file=("talk.wav", AUDIO, "audio/wav"),
                                             language="en", extra_headers={"x-request-id": "stt-1"})
    assert result.text == f"transcribed {len(AUDIO)} bytes of talk.wav"
    [seen] = upstreams["openai"].requests("stt-1")
    assert seen["body"]["model"] == "whisper-1" and seen["body"]["language"] == "en"
    assert seen["body"]["files"] == [{"field": "file", "filename": "talk.wav", "content_type": "audio/wav",
                                      "size": len(AUDIO)}]
    row = _ledger_row(gateway, "stt-1")
    assert row["endpoint"] == "audio/transcriptions"
    assert Decimal(row["cost_usd"]) == 4 * Decimal("0.006") / 60


def test_a_large_upload_arrives_whole(sdk: openai.OpenAI) -> None:
    # Past the in-memory spool (1 MiB): the file goes through disk on its way.
    big = bytes(range(256)) * (3 * 4096)
    result = sdk.audio.transcriptions.create(model="whisper-1", file=("long.mp3", big, "audio/mpeg"))
    assert result.text == f"transcribed {len(big)} bytes of long.mp3"


def test_translation_as_text(sdk: openai.OpenAI) -> None:
    text = sdk.audio.translations.create(model="whisper-1", file=("fr.wav", AUDIO), response_format="text")
    assert text.strip() == f"translated {len(AUDIO)} bytes of fr.wav"


def test_a_fallback_sends_the_upload_again(sdk: openai.OpenAI) -> None:
    result = sdk.audio.transcriptions.create(model="whisper-dead", file=("again.wav", AUDIO))
    assert result.text == f"transcribed {len(AUDIO)} bytes of again.wav"


def test_speech_streams_binary_audio(sdk: openai.OpenAI, gateway: Gateway) -> None:
    response = sdk.audio.speech.create(model="tts-1", voice="alloy", input="hello there world",
                                       extra_headers={"x-request-id": "tts-1"})
    assert response.response.headers["content-type"] == "audio/mpeg"
    assert response.content == SPEECH_PIECE * 16
    row = _ledger_row(gateway, "tts-1")
    assert row["endpoint"] == "audio/speech"
    assert Decimal(row["cost_usd"]) == len("hello there world") * Decimal("15.00") / 1_000_000


def test_speech_reaches_the_client_as_it_is_made(gateway: Gateway) -> None:
    body = {"model": "tts-1", "voice": "alloy", "input": "hi", "fake": {"tokens": 4, "inter_token_ms": 300}}
    arrivals: list[tuple[float, int]] = []
    with httpx.stream("POST", gateway.url + "/audio/speech", json=body,
                      headers={"authorization": f"Bearer {MASTER_KEY}"}) as response:
        for chunk in response.iter_raw():
            arrivals.append((time.monotonic(), len(chunk)))
    assert sum(size for _, size in arrivals) == 4 * len(SPEECH_PIECE)
    # Relayed piece by piece, not gathered: the first piece came well before the last was made.
    assert len(arrivals) >= 2 and arrivals[-1][0] - arrivals[0][0] > 0.5


def test_speech_cut_upstream_is_not_a_complete_answer(gateway: Gateway) -> None:
    body = {"model": "tts-1", "voice": "alloy", "input": "hi", "fake": {"drop_after": 3}}
    with pytest.raises(httpx.HTTPError):
        httpx.post(gateway.url + "/audio/speech", json=body, headers={"authorization": f"Bearer {MASTER_KEY}"})


def test_moderations(sdk: openai.OpenAI) -> None:
    result = sdk.moderations.create(model="omni-moderation-latest", input=["I will kill the process", "hello"])
    assert [r.flagged for r in result.results] == [True, False]
    assert result.results[0].categories.violence is True
    # Without a model, OpenAI's default is asked for, as OpenAI itself does.
    assert sdk.moderations.create(input="hello").results[0].flagged is False


def test_rerank_in_cohere_and_jina_shape(gateway: Gateway) -> None:
    documents = ["the sky is blue", "grass is green and the sky is wide", "stones"]
    response = httpx.post(gateway.url + "/rerank", headers={"authorization": f"Bearer {MASTER_KEY}",
                                                            "x-request-id": "rerank-1"},
                          json={"model": "reranker", "query": "sky green", "documents": documents, "top_n": 2,
                                "return_documents": True})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == [1, 0]
    assert results[0]["document"]["text"] == documents[1]
    row = _ledger_row(gateway, "rerank-1")
    assert row["endpoint"] == "rerank" and row["prompt_tokens"] == response.json()["usage"]["total_tokens"]


def test_limits_apply(sdk: openai.OpenAI) -> None:
    sdk.images.generate(model="dall-e-limited", prompt="one")
    with pytest.raises(openai.RateLimitError):
        sdk.images.generate(model="dall-e-limited", prompt="two")


def test_upstream_failures_keep_their_meaning(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        sdk.images.generate(model="dall-e-3", prompt="x", extra_body={"fake": {"status": 429}})
    with pytest.raises(openai.InternalServerError):
        sdk.audio.transcriptions.create(model="whisper-1", file=("a.wav", AUDIO),
                                        extra_body={"fake": orjson.dumps({"status": 500}).decode()})


@pytest.mark.parametrize(("call", "status", "code"), [
    # A provider that has no such API: 400 naming it.
    (lambda sdk: sdk.images.generate(model="claude", prompt="x"), 400, "unsupported_endpoint"),
    (lambda sdk: sdk.audio.speech.create(model="claude", voice="alloy", input="x"), 400, "unsupported_endpoint"),
    (lambda sdk: sdk.audio.transcriptions.create(model="claude", file=("a.wav", AUDIO)), 400,
     "unsupported_endpoint"),
    (lambda sdk: sdk.moderations.create(model="claude", input="x"), 400, "unsupported_endpoint"),
    # A model the gateway does not serve: 404.
    (lambda sdk: sdk.images.generate(model="nope", prompt="x"), 404, "model_not_found"),
    (lambda sdk: sdk.audio.transcriptions.create(model="nope", file=("a.wav", AUDIO)), 404, "model_not_found"),
])
def test_what_cannot_be_served_is_a_clear_error(sdk: openai.OpenAI, call: Any, status: int, code: str) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        call(sdk)
    assert caught.value.status_code == status
    assert caught.value.code == code


@pytest.mark.parametrize(("path", "kwargs", "param"), [
    ("/images/generations", {"json": {"model": "dall-e-3"}}, "prompt"),
    ("/audio/speech", {"json": {"model": "tts-1", "voice": "alloy"}}, "input"),
    ("/rerank", {"json": {"model": "reranker", "query": "q"}}, "documents"),
    ("/rerank", {"json": {"model": "reranker", "query": "q", "documents": []}}, "documents"),
    ("/audio/transcriptions", {"data": {"model": "whisper-1"}, "files": {"other": ("a.wav", b"x")}}, "file"),
    ("/audio/transcriptions", {"files": {"file": ("a.wav", b"x")}}, "model"),
    ("/audio/transcriptions", {"json": {"model": "whisper-1"}}, None),
    ("/audio/translations", {"content": b"--x\r\nnot a form", "headers": {
        "content-type": "multipart/form-data; boundary=x"}}, None),
])
def test_bad_input_is_a_400_in_openai_shape(gateway: Gateway, path: str, kwargs: dict[str, Any],
                                            param: str | None) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}", **kwargs.pop("headers", {})}
    response = httpx.post(gateway.url + path, headers=headers, **kwargs)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if param is not None:
        assert error["param"] == param


def test_keys_limited_to_other_models_are_refused(gateway: Gateway, tmp_path: Path) -> None:
    created = httpx.post(gateway.base + "/admin/api/keys", headers={"authorization": f"Bearer {MASTER_KEY}"},
                         json={"name": "images-only", "allowed_models": ["dall-e-3"]})
    assert created.status_code in (200, 201), created.text
    key = created.json()["key"]
    client = openai.OpenAI(base_url=gateway.url, api_key=key, max_retries=0)
    assert client.images.generate(model="dall-e-3", prompt="x").data
    with pytest.raises(openai.PermissionDeniedError):
        client.audio.speech.create(model="tts-1", voice="alloy", input="x")



def test_a_budget_counts_what_images_cost(gateway: Gateway, upstreams: dict[str, Any]) -> None:
    created = httpx.post(gateway.base + "/admin/api/keys", headers={"authorization": f"Bearer {MASTER_KEY}"},
                         json={"name": "small-budget", "budget_usd": "0.10"})
    assert created.status_code in (200, 201), created.text
    client = openai.OpenAI(base_url=gateway.url, api_key=created.json()["key"], max_retries=0)
    # A request is admitted while the spend is under the budget: two 1024x1792 images ($0.16) are
    # made, and that spend, counted in images, refuses the next request before it is sent.
    assert client.images.generate(model="dall-e-3", prompt="x", n=2, size="1024x1792").data
    with pytest.raises(openai.RateLimitError):
        client.images.generate(model="dall-e-3", prompt="x", extra_headers={"x-request-id": "over-budget"})
    assert upstreams["openai"].requests("over-budget") == []
