"""Bedrock's Converse and ConverseStream: the request and answer mapping, the event-stream framing,
SigV4 signing with credentials from the standard chain, and the official SDK through a real
gateway to a fake that checks every signature."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from botocore.eventstream import EventStreamBuffer

from gateway.config.file import ConfigError, config_from_dict
from gateway.config.settings import Settings
from gateway.core.errors import ContextLengthExceeded, InvalidRequest, RateLimited, UpstreamError
from gateway.core.types import Endpoint, Usage
from gateway.fake.app import Request
from gateway.fake.eventstream import event, exception
from gateway.fake.providers.bedrock import expected_signature
from gateway.providers import PROVIDERS
from gateway.providers.bedrock.request import to_converse
from gateway.providers.bedrock.response import from_converse
from gateway.providers.bedrock.stream import BedrockStreamTranslator
from tests.procs import MASTER_KEY, Gateway
from tests.providers.calls import request
from tests.providers.helpers import fixture, openai_events, reassemble, split_feed
from tests.providers.procs import ProviderFake

KEY_ID, SECRET = "AKIDFAKEEXAMPLE0001", "fake-secret-key-0123456789abcdefghijkl"
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather by city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
MESSAGES: list[Any] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "alpha beta gamma"}]
ECHO = " ".join(["alpha", "beta", "gamma"][i % 3] for i in range(16))
PIXEL = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _deployment(**fields: Any) -> Any:
    raw = {"models": [{"name": "claude", "deployments": [{"provider": "bedrock", "model": MODEL, **fields}]}]}
    return config_from_dict(raw, PROVIDERS)[0].models[0].deployments[0]


# The request.


def test_messages_system_tools_and_inference_config() -> None:
    body = {"messages": [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
        {"role": "user", "content": [{"type": "text", "text": "and this?"},
                                     {"type": "image_url", "image_url": {"url": PIXEL}}]},
    ], "tools": TOOLS, "tool_choice": "required", "max_tokens": 100, "temperature": 1.5, "top_p": 0.5,
        "stop": "END", "top_k": 40}
    out = to_converse(body)
    assert out["system"] == [{"text": "be brief"}]
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][1]["content"] == [
        {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}}]
    # The tool result and the next user message share one user turn, as Converse requires.
    assert out["messages"][2]["content"][0] == {"toolResult": {"toolUseId": "call_1", "content": [{"text": "rain"}]}}
    assert out["messages"][2]["content"][2] == {"image": {"format": "png", "source": {
        "bytes": base64.b64encode(b"\x89PNG fake").decode()}}}
    assert out["inferenceConfig"] == {"maxTokens": 100, "temperature": 1.0, "topP": 0.5, "stopSequences": ["END"]}
    assert out["toolConfig"]["toolChoice"] == {"any": {}}
    assert out["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"] == ["city"]
    assert out["additionalModelRequestFields"] == {"top_k": 40}


def test_what_converse_cannot_take_is_a_400() -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_converse({"messages": MESSAGES, "n": 2})
    assert caught.value.param == "n"
    with pytest.raises(InvalidRequest) as caught:
        to_converse({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}}]}]})
    assert caught.value.param == "messages[0].content[0]"


# The answer.


def test_answer_with_text_tool_calls_and_cache_usage() -> None:
    reply, usage = from_converse(fixture("bedrock_converse.json"), "chatcmpl-1", "claude", 1700000000)
    choice = reply["choices"][0]
    assert choice["message"]["content"] == "Let me look that up."
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert choice["finish_reason"] == "tool_calls"
    assert usage == Usage(prompt_tokens=12 + 100 + 5, completion_tokens=20, cached_tokens=100)


def _frames(events: list[dict[str, Any]]) -> bytes:
    return b"".join(event(e["event"], orjson.dumps(e["data"])) for e in events)


def test_the_fakes_frames_are_what_botocore_reads() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(_frames(fixture("bedrock_stream.json")["events"]))
    messages = list(buffer)
    assert [m.headers[":event-type"] for m in messages][:2] == ["messageStart", "contentBlockDelta"]
    assert all(m.headers[":message-type"] == "event" for m in messages)


@pytest.mark.parametrize("cuts", [[], [1, 7, 13], list(range(3, 900, 29))])
def test_stream_whatever_the_cuts(cuts: list[int]) -> None:
    data = _frames(fixture("bedrock_stream.json")["events"])
    translator = BedrockStreamTranslator(True, "chatcmpl-1", "claude", 1700000000)
    events = openai_events(split_feed(translator, data, cuts))
    rebuilt = reassemble(events)
    assert rebuilt["text"] == "Hello there"
    [call] = rebuilt["calls"]
    assert call == {"id": "tooluse_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert rebuilt["finish"] == "tool_calls"
    assert rebuilt["usage"]["prompt_tokens"] == 30 and rebuilt["usage"]["completion_tokens"] == 9
    assert events[-1] == "[DONE]" and translator.done


def test_an_exception_frame_arrives_in_band() -> None:
    events = fixture("bedrock_stream.json")["events"][:2]
    data = _frames(events) + exception("throttlingException", b'{"message":"slow down"}')
    translator = BedrockStreamTranslator(False, "c", "m", 0)
    out = translator.feed(data)
    assert b"Hello" in out
    with pytest.raises(RateLimited):
        translator.finish()


def test_a_damaged_or_cut_stream_is_an_error() -> None:
    data = bytearray(_frames(fixture("bedrock_stream.json")["events"]))
    data[20] ^= 0xFF  # inside the first message: its CRC no longer matches
    damaged = BedrockStreamTranslator(False, "c", "m", 0)
    damaged.feed(bytes(data))
    with pytest.raises(UpstreamError) as caught:
        damaged.finish()
    assert caught.value.code == "upstream_stream_truncated"
    cut = BedrockStreamTranslator(False, "c", "m", 0, estimate=lambda deltas: Usage(completion_tokens=deltas))
    cut.feed(_frames(fixture("bedrock_stream.json")["events"][:3]))
    assert cut.usage == Usage(completion_tokens=2)  # a cancelled stream is charged for what it relayed
    with pytest.raises(UpstreamError):
        cut.finish()


# Errors.


@pytest.mark.parametrize(("status", "kind", "message", "expected", "code"), [
    (429, "ThrottlingException", "Too many requests", RateLimited, None),
    (400, "ValidationException", "Input is too long for requested model.", ContextLengthExceeded,
     "context_length_exceeded"),
    (400, "ValidationException", "bad field", InvalidRequest, None),
    (403, "AccessDeniedException", "no access", UpstreamError, "upstream_auth_failed"),
    (503, "ServiceUnavailableException", "busy", UpstreamError, "overloaded"),
    (424, "ModelErrorException", "model broke", UpstreamError, "upstream_error"),
])
def test_errors(status: int, kind: str, message: str, expected: type, code: str | None) -> None:
    error = PROVIDERS["bedrock"](Settings()).map_error(
        status, {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
        orjson.dumps({"message": message}), "d")
    assert isinstance(error, expected)
    if code is not None:
        assert error.code == code


# Configuration and signing.


def test_region_and_url_from_the_environment(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    d = _deployment()
    assert (d.region, d.base_url) == ("eu-west-3", "https://bedrock-runtime.eu-west-3.amazonaws.com")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigError, match="region: required"):
        _deployment()


def _request_as_received(call: Any) -> Request:
    from urllib.parse import urlsplit

    url = urlsplit(call.url)
    headers = {k.lower(): v for k, v in call.headers.items()}
    headers["host"] = url.netloc
    return Request("POST", url.path, url.query, headers, call.body)


def test_calls_are_signed_sigv4_from_the_standard_chain(aws_env: None) -> None:
    d = _deployment(region="us-east-1")
    call = PROVIDERS["bedrock"](Settings()).build_call(request({"model": "claude", "messages": MESSAGES}), d)
    assert call.url == ("https://bedrock-runtime.us-east-1.amazonaws.com/model/"
                        "anthropic.claude-3-5-haiku-20241022-v1%3A0/converse")
    authorization = call.headers["Authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
    scope = authorization.split("Credential=")[1].split(",")[0].split("/", 1)[1]
    assert scope.endswith("/us-east-1/bedrock/aws4_request")
    signed = authorization.split("SignedHeaders=")[1].split(",")[0]
    signature = authorization.split("Signature=")[1]
    # The fake's verifier follows AWS's documented algorithm, not botocore's code.
    assert expected_signature(_request_as_received(call), SECRET, scope, signed) == signature
    assert expected_signature(_request_as_received(call), "another-secret", scope, signed) != signature
    assert SECRET not in str(call.headers)


def test_streams_ask_for_converse_stream(aws_env: None) -> None:
    d = _deployment(region="us-east-1")
    call = PROVIDERS["bedrock"](Settings()).build_call(
        request({"model": "claude", "messages": MESSAGES, "stream": True}), d)
    assert call.url.endswith("/converse-stream")
    assert call.headers["Accept"] == "application/vnd.amazon.eventstream"


def test_a_bedrock_api_key_is_a_bearer_token(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-0123456789")
    d = _deployment(region="us-east-1", api_key_env="AWS_BEARER_TOKEN_BEDROCK")
    call = PROVIDERS["bedrock"](Settings()).build_call(request({"model": "claude", "messages": MESSAGES}), d)
    assert call.headers["Authorization"] == "Bearer bedrock-api-key-0123456789"
    assert "X-Amz-Date" not in call.headers


def test_no_credentials_is_a_502_naming_the_cause(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    d = _deployment(region="us-east-1")
    with pytest.raises(UpstreamError) as caught:
        PROVIDERS["bedrock"](Settings()).build_call(request({"model": "claude", "messages": MESSAGES}), d)
    assert caught.value.code == "upstream_auth_failed"


def test_other_endpoints_are_a_400(aws_env: None) -> None:
    d = _deployment(region="us-east-1")
    with pytest.raises(InvalidRequest) as caught:
        PROVIDERS["bedrock"](Settings()).build_call(request({"model": "claude", "input": "x"}, Endpoint.EMBEDDINGS), d)
    assert caught.value.code == "unsupported_endpoint"


# Through a real gateway, with the official SDK, to the fake that checks each signature.


@pytest.fixture(scope="module")
def bedrock_fake() -> Iterator[ProviderFake]:
    fake = ProviderFake("bedrock", require_key=f"{KEY_ID}:{SECRET}")
    try:
        yield fake
    finally:
        fake.close()


def _aws(tmp: Any, secret: str = SECRET) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": secret, "AWS_CONFIG_FILE": str(tmp / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"), "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def bedrock_sdk(bedrock_fake: ProviderFake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    tmp = tmp_path_factory.mktemp("bedrock")
    models = [{"name": "claude", "deployments": [
        {"provider": "bedrock", "base_url": bedrock_fake.url, "model": MODEL, "region": "us-east-1"}]}]
    gw = Gateway(tmp, models, env=_aws(tmp))
    try:
        yield openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    finally:
        gw.close()


def test_chat(bedrock_sdk: openai.OpenAI, bedrock_fake: ProviderFake) -> None:
    completion = bedrock_sdk.chat.completions.create(model="claude", messages=MESSAGES,
                                                     extra_headers={"x-request-id": "bedrock-chat"})
    assert completion.choices[0].message.content == ECHO
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 16)
    [seen] = bedrock_fake.requests("bedrock-chat")
    assert seen["path"] == "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"


def test_stream_with_and_without_usage(bedrock_sdk: openai.OpenAI) -> None:
    chunks = list(bedrock_sdk.chat.completions.create(model="claude", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ECHO
    assert all(c.choices for c in chunks)
    chunks = list(bedrock_sdk.chat.completions.create(model="claude", messages=MESSAGES, stream=True,
                                                      stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 16


def test_tool_calls_then_the_result_turn(bedrock_sdk: openai.OpenAI) -> None:
    call_directive = {"fake": {"tool_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}}
    completion = bedrock_sdk.chat.completions.create(model="claude", messages=MESSAGES, tools=TOOLS,
                                                     extra_body=call_directive)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert orjson.loads(call.function.arguments) == {"city": "Paris"}
    turns: list[Any] = [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                        {"role": "tool", "tool_call_id": call.id, "content": "sunny and warm"}]
    follow_up = bedrock_sdk.chat.completions.create(model="claude", tools=TOOLS, messages=turns)
    assert "sunny" in (follow_up.choices[0].message.content or "")
    stream = bedrock_sdk.chat.completions.create(model="claude", messages=MESSAGES, tools=TOOLS, stream=True,
                                                 extra_body=call_directive)
    rebuilt = reassemble([chunk.model_dump() for chunk in stream])
    assert rebuilt["finish"] == "tool_calls"
    assert orjson.loads(rebuilt["calls"][0]["arguments"]) == {"city": "Paris"}


def test_failures_keep_their_meaning(bedrock_sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        bedrock_sdk.chat.completions.create(model="claude", messages=MESSAGES, extra_body={"fake": {"status": 429}})
    with pytest.raises(openai.BadRequestError) as caught:
        bedrock_sdk.chat.completions.create(model="claude", messages=[{"role": "user", "content": "word " * 5000}])
    assert caught.value.code == "context_length_exceeded"
    stream = bedrock_sdk.chat.completions.create(model="claude", messages=MESSAGES, stream=True,
                                                 extra_body={"fake": {"error_after": 2}})
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_a_wrong_secret_is_refused_by_the_signature_check(bedrock_fake: ProviderFake, tmp_path: Any) -> None:
    models = [{"name": "claude", "deployments": [
        {"provider": "bedrock", "base_url": bedrock_fake.url, "model": MODEL, "region": "us-east-1"}]}]
    gw = Gateway(tmp_path, models, env=_aws(tmp_path, secret="not-the-secret-0123456789"))
    try:
        client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="claude", messages=MESSAGES)
        assert caught.value.code == "upstream_auth_failed"
        assert "not-the-secret" not in caught.value.response.text
    finally:
        gw.close()


def test_a_role_through_web_identity(bedrock_fake: ProviderFake, tmp_path: Any) -> None:
    # As on Kubernetes (IRSA): a projected service-account token and a role to assume with it; the
    # fake is STS too, and accepts only the temporary credentials it handed out.
    token_file = tmp_path / "token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl")
    env = {"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/gateway", "AWS_ROLE_SESSION_NAME": "gateway",
           "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file), "AWS_ENDPOINT_URL_STS": bedrock_fake.root,
           "AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}
    models = [{"name": "claude", "deployments": [{"provider": "bedrock", "base_url": bedrock_fake.url,
                                                  "model": MODEL}]}]
    before = httpx.get(bedrock_fake.root + "/_fake/sts").json()["roles_assumed"]
    gw = Gateway(tmp_path, models, env={**env, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    try:
        client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
        for _ in range(3):
            assert client.chat.completions.create(model="claude", messages=MESSAGES).choices[0].message.content == ECHO
    finally:
        gw.close()
    # One role assumed, its credentials reused until near their expiry.
    assert httpx.get(bedrock_fake.root + "/_fake/sts").json()["roles_assumed"] == before + 1
