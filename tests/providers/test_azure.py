"""The Azure adapter: deployment URLs, the api-key header, and the filter-only first chunk."""

from __future__ import annotations

import orjson
import pytest

from gateway.core.errors import RateLimited
from gateway.core.types import Endpoint, Usage
from gateway.providers.azure import DEFAULT_API_VERSION
from gateway.providers.azure.stream import AzureStreamTranslator
from gateway.providers.openai.stream import OpenAIStreamTranslator
from tests.providers.calls import KEY, adapter, deployment, request
from tests.providers.helpers import data_frames, fixture, openai_events, split_feed


@pytest.mark.parametrize("endpoint", [Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS])
def test_deployment_url_version_and_key(monkeypatch: pytest.MonkeyPatch, endpoint: Endpoint) -> None:
    d = deployment(monkeypatch, provider="azure", base_url="https://res.openai.azure.com/", model="gpt 4o",
                   api_version="2025-01-01-preview")
    call = adapter("azure").build_call(request({"model": "public", "input": "x"}, endpoint), d)
    assert call.url == f"https://res.openai.azure.com/openai/deployments/gpt%204o/{endpoint.value}" \
                       "?api-version=2025-01-01-preview"
    assert call.headers["api-key"] == KEY
    assert "Authorization" not in call.headers


def test_streams_ask_for_usage_and_the_version_has_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    d = deployment(monkeypatch, provider="azure", base_url="https://res.openai.azure.com", model="dep")
    call = adapter("azure").build_call(request({"model": "public", "messages": [], "stream": True}), d)
    assert call.url.endswith(f"?api-version={DEFAULT_API_VERSION}")
    assert orjson.loads(call.body or b"")["stream_options"] == {"include_usage": True}


def test_the_filter_only_first_chunk_is_dropped_and_usage_kept() -> None:
    frames = data_frames(fixture("azure_stream.json")["frames"]) + b"data: [DONE]\n\n"
    translator = AzureStreamTranslator(OpenAIStreamTranslator(strip_usage=False))
    events = openai_events(split_feed(translator, frames, list(range(5, len(frames), 11))))
    assert all(e == "[DONE]" or "prompt_filter_results" not in e for e in events)
    assert events[0]["choices"][0]["delta"] == {"content": "", "role": "assistant"}
    assert events[-2]["usage"]["prompt_tokens"] == 9
    assert translator.usage == Usage(prompt_tokens=9, completion_tokens=1)
    assert translator.done


def test_without_usage_every_chunk_a_client_sees_has_a_choice() -> None:
    frames = data_frames(fixture("azure_stream.json")["frames"]) + b"data: [DONE]\n\n"
    translator = AzureStreamTranslator(OpenAIStreamTranslator(strip_usage=True))
    events = openai_events(translator.feed(frames) + translator.finish())
    assert all(e == "[DONE]" or e["choices"] for e in events)
    assert translator.usage is not None


def test_azure_errors_keep_their_meaning() -> None:
    azure = adapter("azure")
    throttled = azure.map_error(429, {"retry-after-ms": "1500"}, orjson.dumps({"error": {
        "code": "429", "message": "Requests ... Please retry after 1 second."}}), "d")
    assert isinstance(throttled, RateLimited) and throttled.retry_after == 1.5
    filtered = azure.map_error(400, {}, orjson.dumps({"error": {
        "message": "The response was filtered", "type": None, "param": "prompt", "code": "content_filter",
        "innererror": {"code": "ResponsibleAIPolicyViolation"}}}), "d")
    assert (filtered.status, filtered.code) == (400, "content_filter")
    context_error = azure.map_error(400, {}, orjson.dumps({"error": {
        "message": "This model's maximum context length is 8192 tokens.", "code": "context_length_exceeded"}}), "d")
    assert context_error.code == "context_length_exceeded"
