"""The sample third-party plugin (examples/sample_plugin), pip-installed into its own directory and
found by the gateway through its `llm_gateway.plugins` entry point; and failing plugins contained."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import uuid
from pathlib import Path

import openai
import pytest

from gateway.plugins.registry import GROUP, plugin_classes
from tests.plugins.conftest import Tenants, client_for, ledger_row, metric_value
from tests.procs import Gateway


def test_the_entry_point_is_declared_by_the_installed_package(sample_site: Path) -> None:
    # What the gateway process does at start-up, here in a child with the same sys.path.
    code = ("from gateway.plugins.registry import plugin_classes; "
            "print(plugin_classes()['stamp'].__module__)")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(sample_site)},
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "sample_plugin"
    [dist] = list(importlib.metadata.distributions(path=[str(sample_site)]))
    assert [(e.name, e.group) for e in dist.entry_points] == [("stamp", GROUP)]


def test_a_plugin_that_takes_a_built_in_name_or_is_not_a_plugin_is_left_out() -> None:
    found = [
        importlib.metadata.EntryPoint("pii", "sample_plugin:StampPlugin", GROUP),
        importlib.metadata.EntryPoint("not-a-plugin", "gateway.plugins.text:request_texts", GROUP),
        importlib.metadata.EntryPoint("broken", "no_such_module_anywhere:Thing", GROUP),
    ]
    classes = plugin_classes(found)
    assert classes["pii"].__module__ == "gateway.plugins.guardrails.pii"
    assert "not-a-plugin" not in classes and "broken" not in classes


def test_sample_plugin_hooks_run_in_the_gateway(plugin_gateway: Gateway, tenants: Tenants) -> None:
    client = client_for(plugin_gateway, tenants.shout)
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "quiet words here"}])
    assert raw.headers["x-sample-stamp"] == "sample-v1"
    # The fake upstream echoes the last message's words to 16 tokens; the plugin's `after` shouts them.
    assert raw.parse().choices[0].message.content == " ".join((["QUIET", "WORDS", "HERE"] * 6)[:16])
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "quiet words"}], stream=True) if c.choices)
    assert streamed == streamed.upper() and streamed.startswith("QUIET WORDS QUIET")


def test_a_failing_plugin_is_skipped_when_configured_so(plugin_gateway: Gateway, tenants: Tenants) -> None:
    labels = {"plugin": "stamp-skip", "hook": "before"}
    before = metric_value(plugin_gateway, "llm_gateway_plugin_failures_total", **labels)
    raw = client_for(plugin_gateway, tenants.skip).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hello"}])
    assert raw.status_code == 200 and "x-sample-stamp" not in raw.headers
    assert metric_value(plugin_gateway, "llm_gateway_plugin_failures_total", **labels) == before + 1


def test_a_failing_plugin_fails_the_request_clearly(plugin_gateway: Gateway, tenants: Tenants) -> None:
    request_id = "req_plug_" + uuid.uuid4().hex
    secret = f"private-{uuid.uuid4().hex[:8]}"
    with pytest.raises(openai.InternalServerError) as caught:
        client_for(plugin_gateway, tenants.fail).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": secret}], extra_headers={"x-request-id": request_id})
    assert caught.value.status_code == 500
    assert caught.value.body == {"message": "The gateway's plugin 'stamp-fail' failed while processing your request.",  # type: ignore[comparison-overlap]
                                 "type": "server_error", "param": None, "code": "plugin_error"}
    assert ledger_row(plugin_gateway, request_id)["status"] == 500
    log = plugin_gateway.log_file.read_text()  # type: ignore[attr-defined]
    line = next(x for x in log.splitlines() if "plugin stamp-fail failed in before" in x)
    assert "SampleFailure" in line and "asked to fail" not in line  # the type, never the message


def test_a_plugin_failing_mid_stream_ends_it_in_band(plugin_gateway: Gateway, tenants: Tenants) -> None:
    stream = client_for(plugin_gateway, tenants.chunk_fail).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello"}], stream=True)
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert "stamp-chunk" in caught.value.message
    assert metric_value(plugin_gateway, "llm_gateway_plugin_failures_total", plugin="stamp-chunk",
                        hook="on_chunk") >= 1
