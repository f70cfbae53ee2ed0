"""A stored prompt in a Responses body: the version's params under their Responses names, the rest kept for chat."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.core.errors import InvalidRequest
from gateway.dialects.responses.prompt import with_template
from gateway.dialects.responses.request import read
from gateway.prompts.store import Version

RENDERED = [{"role": "developer", "content": "Be exact."}, {"role": "user", "content": "Sum 2 and 2"}]


def version(model: str | None = "gpt", **params: Any) -> Version:
    return Version("tmpl_1", 3, RENDERED, [], model, params, None, datetime.now(UTC), "admin")


def test_params_take_their_responses_names_and_the_request_wins() -> None:
    body = {"prompt": {"id": "tmpl_1", "variables": {"x": "1"}}, "temperature": 0.9, "text": {"verbosity": "low"}}
    out, use = with_template(body, version(temperature=0.1, top_p=0.5, max_tokens=40, seed=7, reasoning_effort="low",
                                           response_format={"type": "json_schema",
                                                            "json_schema": {"name": "n", "schema": {}}}), RENDERED)
    assert "prompt" not in out and out["model"] == "gpt"
    assert (out["temperature"], out["top_p"], out["max_output_tokens"]) == (0.9, 0.5, 40)
    assert out["text"] == {"verbosity": "low", "format": {"type": "json_schema", "name": "n", "schema": {}}}
    assert out["reasoning"] == {"effort": "low"}
    assert use.echo == {"id": "tmpl_1", "version": "3", "variables": {"x": "1"}} and use.chat_params == {"seed": 7}

    request = read(out, template=use)
    assert request.chat["messages"] == RENDERED and request.chat["seed"] == 7
    assert request.chat["response_format"]["type"] == "json_schema" and request.chat["max_completion_tokens"] == 40
    assert request.input_items == []  # the template is not this turn's input
    assert request.echo["instructions"] == [{"type": "message", **m} for m in RENDERED]


def test_a_request_model_wins_and_stop_is_refused_for_a_native_upstream_only() -> None:
    out, use = with_template({"prompt": {"id": "tmpl_1"}, "model": "mine", "input": "more"}, version(stop=["x"]),
                             RENDERED)
    assert out["model"] == "mine"
    assert read(out, template=use).chat["stop"] == ["x"]
    with pytest.raises(InvalidRequest) as caught:
        use.refuse_native()
    assert caught.value.param == "prompt"
