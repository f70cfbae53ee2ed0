"""Every error is an OpenAI error object with the status OpenAI would use, and the SDK's matching class."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.procs import MASTER_KEY, Gateway

MESSAGES = [{"role": "user", "content": "hi"}]
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def assert_openai_error(response: httpx.Response, status: int, type_: str, code: str | None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"]
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == (type_, code)
    assert error["message"]
    return error


def test_malformed_json_is_400(gateway: Gateway) -> None:
    r = httpx.post(gateway.url + "/chat/completions", content=b"{not json", headers=AUTH)
    assert_openai_error(r, 400, "invalid_request_error", None)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": MESSAGES}, "model"),
        ({"model": "gpt-test"}, "messages"),
        ({"model": "gpt-test", "messages": "not a list"}, "messages"),
        ({"model": "gpt-test", "messages": MESSAGES, "stream": "yes"}, "stream"),
        ([1, 2], None),
    ],
)
def test_bad_fields_are_400_naming_the_field(gateway: Gateway, body: object, param: str | None) -> None:
    r = httpx.post(gateway.url + "/chat/completions", json=body, headers=AUTH)
    error = assert_openai_error(r, 400, "invalid_request_error", r.json()["error"]["code"])
    assert error["param"] == param


def test_sdk_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-test", messages=[])
    assert info.value.body["param"] == "messages"  # type: ignore[index]


def test_missing_and_wrong_key_are_401(gateway: Gateway) -> None:
    r = httpx.post(gateway.url + "/chat/completions", json={"model": "gpt-test", "messages": MESSAGES})
    assert_openai_error(r, 401, "invalid_request_error", "invalid_api_key")
    wrong = openai.OpenAI(base_url=gateway.url, api_key="sk-wrong-key-123456", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        wrong.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert "sk-wrong" not in str(info.value)
    assert info.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=MESSAGES, stream=True)


def test_body_over_limit_is_413(client: openai.OpenAI, gateway: Gateway) -> None:
    big = [{"role": "user", "content": "x" * 70_000}]
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-test", messages=big)
    assert info.value.status_code == 413
    # Chunked, with no content-length to reject early: the limit holds while reading.
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"model": "gpt-test", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}]}'
    r = httpx.post(gateway.url + "/chat/completions", content=chunks(), headers=AUTH)
    assert_openai_error(r, 413, "invalid_request_error", "request_too_large")


def test_upstream_timeout_is_504(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="slow", messages=MESSAGES, extra_body={"fake": {"latency_ms": 2000}})
    assert info.value.status_code == 504
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(
            model="slow", messages=MESSAGES, stream=True, extra_body={"fake": {"ttft_ms": 2000}}
        )
    assert info.value.status_code == 504


def test_upstream_unreachable_is_502(client: openai.OpenAI) -> None:
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="down", messages=MESSAGES, stream=stream)
        assert info.value.status_code == 502
        assert info.value.code == "upstream_unreachable"


def test_upstream_errors_are_mapped(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as rate:
        client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, extra_body={"fake": {"status": 429, "retry_after": 7}}
        )
    assert rate.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.InternalServerError) as server:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, extra_body={"fake": {"status": 500}})
    assert server.value.status_code == 502
    with pytest.raises(openai.InternalServerError) as auth:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, extra_body={"fake": {"status": 401}})
    assert auth.value.status_code == 502 and auth.value.code == "upstream_auth_failed"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, extra_body={"fake": {"status": 400}})
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, stream=True, extra_body={"fake": {"status": 429}}
        )


# (method, path, what `Allow` must say): the API's POST-only paths are served by the front door,
# the rest by Starlette, where the admin UI has one route for a page's GET and another for its form's POST.
WRONG_METHODS = [
    ("GET", "/v1/chat/completions", "POST"),
    ("PUT", "/v1/completions", "POST"),
    ("GET", "/v1/embeddings", "POST"),
    ("GET", "/v1/messages", "POST"),
    ("POST", "/v1/models", "GET, HEAD"),
    ("DELETE", "/v1/models/gpt-test", "GET, HEAD"),
    ("POST", "/healthz", "GET, HEAD"),
    ("PUT", "/admin", "GET, HEAD"),
    ("PUT", "/admin/login", "GET, HEAD, POST"),
    ("GET", "/admin/logout", "POST"),
    ("PUT", "/admin/teams", "GET, HEAD, POST"),
    ("DELETE", "/admin/teams/t1", "GET, HEAD, POST"),
    ("PATCH", "/admin/keys", "GET, HEAD, POST"),
    ("DELETE", "/admin/keys/k1", "GET, HEAD, POST"),
    ("GET", "/admin/keys/k1/revoke", "POST"),
    ("POST", "/admin/requests", "GET, HEAD"),
    ("PUT", "/admin/api/teams", "GET, HEAD, POST"),
    ("POST", "/admin/api/keys/k1", "GET, HEAD, PATCH"),
]


@pytest.mark.parametrize(("method", "path", "allow"), WRONG_METHODS)
def test_a_wrong_method_is_405_with_allow_naming_every_right_one(gateway: Gateway, method: str, path: str,
                                                                 allow: str) -> None:
    response = httpx.request(method, gateway.base + path, headers=AUTH)
    assert_openai_error(response, 405, "invalid_request_error", "method_not_allowed")
    assert sorted(m.strip() for m in response.headers["allow"].split(",")) == sorted(allow.split(", "))


def test_unknown_path_and_method(gateway: Gateway) -> None:
    assert_openai_error(httpx.get(gateway.url + "/nothing-here", headers=AUTH), 404, "invalid_request_error",
                        "unknown_url")
    assert_openai_error(httpx.get(gateway.url + "/chat/completions", headers=AUTH), 405, "invalid_request_error",
                        "method_not_allowed")
