"""Property tests of the request parsers (issue 17): whatever JSON a client sends to chat,
completions, embeddings or messages, the gateway answers 2xx or a 4xx in the endpoint's own
error format, never a 5xx, never a traceback.

The draws are seeded and derandomized (the same requests every run) and go over a real socket
to a real gateway in front of the fake upstream. Three kinds of body: any JSON at all; an object
with the endpoint's fields, each given any JSON value; and a mostly valid request with one field
made strange, so that the draws get past the first checks into the deeper parsing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.procs import MASTER_KEY, Gateway

EXAMPLES = 80  # per endpoint and kind of body: 960 requests in all
SEED = 20_261_207

numbers = st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | numbers | st.text(max_size=20)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["user", "assistant", "system", "tool", "developer", "function"]) | st.text(max_size=8)
part_types = st.sampled_from(["text", "image_url", "image", "tool_use", "tool_result"]) | st.text(max_size=5)
content = st.text(max_size=30) | st.lists(
    st.fixed_dictionaries({"type": part_types},
                          optional={"text": json_values, "image_url": json_values, "source": json_values,
                                    "id": json_values, "input": json_values, "content": json_values}),
    max_size=3) | json_values  # fmt: skip
message = st.fixed_dictionaries({"role": roles, "content": content},
                                optional={"name": json_values, "tool_calls": json_values, "tool_call_id": json_values})

FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "/v1/chat/completions": {
        "messages": st.lists(message, min_size=1, max_size=3), "stream": st.booleans(),
        "stream_options": json_values, "max_tokens": json_values, "max_completion_tokens": json_values,
        "n": json_values, "tools": json_values, "tool_choice": json_values, "response_format": json_values,
        "temperature": json_values, "stop": json_values, "user": json_values, "logprobs": json_values,
        "seed": json_values,
    },
    "/v1/completions": {
        "prompt": st.text(max_size=30) | st.lists(st.text(max_size=10) | st.integers(), max_size=3) | json_values,
        "stream": st.booleans(), "max_tokens": json_values, "n": json_values, "echo": json_values,
        "suffix": json_values, "user": json_values, "stream_options": json_values,
    },
    "/v1/embeddings": {
        "input": st.text(max_size=30) | st.lists(st.text(max_size=10), max_size=3) | json_values,
        "dimensions": json_values, "encoding_format": json_values, "user": json_values,
    },
    "/v1/messages": {
        "messages": st.lists(message, min_size=1, max_size=3), "max_tokens": json_values | st.integers(1, 50),
        "system": json_values, "stream": st.booleans(), "tools": json_values, "tool_choice": json_values,
        "stop_sequences": json_values, "temperature": json_values, "metadata": json_values, "thinking": json_values,
    },
}
VALID: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}]},
    "/v1/completions": {"prompt": "hi"},
    "/v1/embeddings": {"input": "hi"},
    "/v1/messages": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16},
}
MODELS = st.sampled_from(["gpt-test", "openai/gpt-slash", "no-such-model"]) | json_values


def any_fields(path: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"model": MODELS}, optional=FIELDS[path])


def one_strange_field(path: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from(sorted(FIELDS[path])).flatmap(
        lambda name: FIELDS[path][name].map(lambda value: {"model": "gpt-test", **VALID[path], name: value}))


def check(gateway: Gateway, path: str, body: object, seen: Counter[int]) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(timeout=30) as http:
        answer = http.post(gateway.base + path, json=body, headers=headers)
    seen[answer.status_code] += 1
    assert answer.status_code < 500, (path, body, answer.status_code, answer.text[:500])
    if answer.status_code >= 400:
        error = answer.json()
        if path == "/v1/messages":  # Anthropic's shape
            assert error["type"] == "error" and isinstance(error["error"]["message"], str), error
        else:
            assert set(error["error"]) >= {"message", "type", "param", "code"}, error
        assert "Traceback" not in answer.text


PATHS = list(FIELDS)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip


@pytest.mark.parametrize("path", PATHS)
def test_any_json_at_all(gateway: Gateway, path: str) -> None:
    seen: Counter[int] = Counter()

    @SETTINGS
    @seed(SEED)
    @given(json_values)
    def probe(body: object) -> None:
        check(gateway, path, body, seen)

    probe()
    assert sum(seen.values()) >= EXAMPLES // 2 and all(status < 500 for status in seen), seen
    print(path, dict(seen))


@pytest.mark.parametrize("path", PATHS)
def test_the_endpoints_fields_with_any_values(gateway: Gateway, path: str) -> None:
    seen: Counter[int] = Counter()

    @SETTINGS
    @seed(SEED)
    @given(any_fields(path))
    def probe(body: dict[str, Any]) -> None:
        check(gateway, path, body, seen)

    probe()
    assert sum(seen.values()) >= EXAMPLES // 2 and all(status < 500 for status in seen), seen
    print(path, dict(seen))


@pytest.mark.parametrize("path", PATHS)
def test_a_valid_request_with_one_strange_field(gateway: Gateway, path: str) -> None:
    seen: Counter[int] = Counter()

    @SETTINGS
    @seed(SEED)
    @given(one_strange_field(path))
    def probe(body: dict[str, Any]) -> None:
        check(gateway, path, body, seen)

    probe()
    # The draws reach past the first checks: some are served, some refused further in.
    assert seen[200] > 0 and any(400 <= s < 500 for s in seen), seen
    print(path, dict(seen))
