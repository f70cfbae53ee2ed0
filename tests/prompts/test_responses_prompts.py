"""The Responses API's `prompt: {id, version, variables}` with the official SDK, through a real gateway:
rendered as on Chat Completions, unary and streamed, on a model served through Chat Completions
("gpt-test") and on one whose upstream speaks the Responses API natively ("native")."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment, ledger_rows

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
MESSAGES = [{"role": "system", "content": "You answer for {{company}}."},
            {"role": "user", "content": "Greet {{name}} warmly"}]
VARIABLES = {"company": "Acme", "name": "Ada"}
BACKENDS = ["gpt-test", "native"]


@pytest.fixture(scope="module")
def gw(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("responses-prompts"),
                      [{"name": "gpt-test", "deployments": [deployment(upstream)]},
                       {"name": "native", "deployments": [deployment(upstream, responses_api="native")]}],
                      settings={"ledger_flush_s": 0.05})
    yield gateway
    gateway.close()


@pytest.fixture(scope="module")
def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)


def template(gw: Gateway, model: str | None, params: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"name": f"greet-{uuid.uuid4().hex[:8]}", "messages": MESSAGES,
                            "params": params or {}}
    if model is not None:
        body["model"] = model
    created = httpx.post(gw.base + "/admin/api/prompts", json=body, headers=ADMIN, timeout=30)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def sent_to_upstream(upstream: FakeUpstream, request_id: str) -> dict[str, Any]:
    [sent] = upstream.requests(request_id)
    return sent


@pytest.mark.parametrize("model", BACKENDS)
def test_the_template_pins_model_and_params_and_the_ledger_names_it(
        gw: Gateway, client: openai.OpenAI, upstream: FakeUpstream, model: str) -> None:
    tid = template(gw, model, {"temperature": 0.25, "max_tokens": 50})
    request_id = "req_rp_" + uuid.uuid4().hex
    # No model, no input: the template gives both.
    response = client.responses.create(prompt={"id": tid, "variables": VARIABLES},
                                       extra_headers={"x-request-id": request_id})
    assert response.output_text.startswith("Greet Ada warmly")  # the fake echoes the last user message
    # A native answer names the upstream's model, as relayed answers do.
    assert response.model == (model if model == "gpt-test" else "fake-gpt")
    assert response.temperature == 0.25 and response.max_output_tokens == 50
    assert response.prompt is not None and (response.prompt.id, response.prompt.version) == (tid, "1")
    assert isinstance(response.instructions, list)
    assert [(m.role, m.content) for m in response.instructions] == [  # type: ignore[union-attr]
        ("system", "You answer for Acme."), ("user", "Greet Ada warmly")]

    sent = sent_to_upstream(upstream, request_id)["body"]
    assert "prompt" not in sent
    if model == "native":
        assert [(i["role"], i["content"]) for i in sent["input"]] == [
            ("system", "You answer for Acme."), ("user", "Greet Ada warmly")]
        assert sent["temperature"] == 0.25 and sent["max_output_tokens"] == 50
    else:
        assert sent["messages"] == [{"role": "system", "content": "You answer for Acme."},
                                    {"role": "user", "content": "Greet Ada warmly"}]
        assert sent["temperature"] == 0.25 and sent["max_completion_tokens"] == 50

    row = ledger_rows(gw, [request_id])[request_id]
    assert (row["template_id"], row["template_version"], row["requested_model"]) == (tid, 1, model)
    # The stored response is the one the client got.
    stored = client.responses.retrieve(response.id)
    assert stored.prompt is not None and stored.prompt.id == tid


@pytest.mark.parametrize("model", BACKENDS)
def test_streamed_with_the_request_own_instructions_input_and_sampling(
        gw: Gateway, client: openai.OpenAI, upstream: FakeUpstream, model: str) -> None:
    tid = template(gw, None, {"temperature": 0.25})
    request_id = "req_rp_" + uuid.uuid4().hex
    with client.responses.stream(model=model, instructions="Be brief.", input="and now say bye",
                                 temperature=0.75, prompt={"id": tid, "version": "1", "variables": {
                                     "company": {"type": "input_text", "text": "Acme"}, "name": "Ada"}},
                                 extra_headers={"x-request-id": request_id}) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert deltas == final.output_text and deltas.startswith("and now say bye")  # the request's input comes last
    sent = sent_to_upstream(upstream, request_id)["body"]
    assert sent["temperature"] == 0.75  # the request's value wins over the version's
    if model == "native":
        assert sent["instructions"] == "Be brief."
        assert [i["content"] for i in sent["input"]][:2] == ["You answer for Acme.", "Greet Ada warmly"]
    else:
        assert [m["content"] for m in sent["messages"]] == [
            "Be brief.", "You answer for Acme.", "Greet Ada warmly", "and now say bye"]
    row = ledger_rows(gw, [request_id])[request_id]
    assert (row["template_id"], row["template_version"]) == (tid, 1)
    # The template's messages are this turn's instructions: a next turn does not carry them.
    stored = client.responses.retrieve(final.id)
    assert stored.prompt is not None and stored.prompt.id == tid
    items = client.responses.input_items.list(final.id).data
    assert [getattr(i, "role", None) for i in items] == ["user"]


@pytest.mark.parametrize("model", BACKENDS)
def test_a_missing_or_extra_variable_is_a_400_naming_it(gw: Gateway, client: openai.OpenAI, model: str) -> None:
    tid = template(gw, model)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"id": tid, "variables": {"name": "Ada"}}, "prompt.variables.company"),
        ({"id": tid, "variables": {**VARIABLES, "mood": "x"}}, "prompt.variables.mood"),
        ({"id": tid, "variables": {**VARIABLES, "name": {"type": "input_image", "image_url": "x"}}},
         "prompt.variables.name"),
        ({"id": tid, "version": "9", "variables": VARIABLES}, "prompt.version"),
        ({"id": "tmpl_nope", "variables": VARIABLES}, "prompt.id"),
    ]
    for prompt, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(prompt=prompt)  # type: ignore[arg-type]
        assert caught.value.body["param"] == param, (prompt, caught.value.body)  # type: ignore[index]
        if param.startswith("prompt.variables."):
            assert f"'{param.rpartition('.')[2]}'" in caught.value.body["message"]  # type: ignore[index]
    # A template without a model and a request without one: the model is what is missing.
    bare = template(gw, None)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(prompt={"id": bare, "variables": VARIABLES})
    assert caught.value.body["param"] == "model"  # type: ignore[index]


def test_a_version_that_sets_stop_is_refused_on_a_native_upstream_only(
        gw: Gateway, client: openai.OpenAI, upstream: FakeUpstream) -> None:
    tid = template(gw, None, {"stop": ["\n\n"], "seed": 7})
    request_id = "req_rp_" + uuid.uuid4().hex
    client.responses.create(model="gpt-test", prompt={"id": tid, "variables": VARIABLES},
                            extra_headers={"x-request-id": request_id})
    sent = sent_to_upstream(upstream, request_id)["body"]
    assert (sent["stop"], sent["seed"]) == (["\n\n"], 7)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="native", prompt={"id": tid, "variables": VARIABLES})
    assert caught.value.body["param"] == "prompt" and "'stop'" in caught.value.body["message"]  # type: ignore[index]


def test_chat_completions_takes_the_same_reference_through_extra_body(
        gw: Gateway, client: openai.OpenAI, upstream: FakeUpstream) -> None:
    tid = template(gw, "gpt-test", {"temperature": 0.25})
    request_id = "req_rp_" + uuid.uuid4().hex
    completion = client.chat.completions.create(
        model="", messages=[], extra_body={"prompt": {"id": tid, "version": "1", "variables": VARIABLES}},
        extra_headers={"x-request-id": request_id})
    assert completion.choices[0].message.content.startswith("Greet Ada warmly")  # type: ignore[union-attr]
    assert completion.model == "fake-gpt"
    chunks = list(client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "then bye"}], stream=True,
        extra_body={"prompt": {"id": tid, "variables": VARIABLES}}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("then bye")
    assert sent_to_upstream(upstream, request_id)["body"]["temperature"] == 0.25
    row = ledger_rows(gw, [request_id])[request_id]
    assert (row["template_id"], row["template_version"]) == (tid, 1)
