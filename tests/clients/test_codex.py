"""Codex CLI (`codex exec`) through the gateway's `/v1/responses`, with a custom model provider in a
temporary CODEX_HOME, through one tool round trip: the model calls `exec_command`, Codex runs
the shell command, the model answers its output. Served by translation on both backends."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import MODELS, AgentsGateway, client_binary, run_client

PROMPT = "Run the shell command 'echo hello-from-tool' and tell me its output."
# Codex refuses `wire_api = "chat"`: the Responses API is all it speaks. Web search off: a model
# served through Chat Completions has no hosted web search (the gateway would refuse the tool).
CONFIG = """\
model = "{model}"
model_provider = "gateway"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false
web_search = "disabled"

[model_providers.gateway]
name = "LLM gateway"
base_url = "{base_url}"
env_key = "LLM_GW_KEY"
wire_api = "responses"

[analytics]
enabled = false

[feedback]
enabled = false
"""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_a_tool_round_trip(agents_gateway: AgentsGateway, backend: str, tmp_path: Path) -> None:
    codex = client_binary("codex")
    key, prefix = agents_gateway.new_key(f"codex-{backend}")
    home, codex_home, work = tmp_path / "home", tmp_path / "codex-home", tmp_path / "work"
    for directory in (home, codex_home, work):
        directory.mkdir()
    model = MODELS[backend]
    (codex_home / "config.toml").write_text(CONFIG.format(model=model, base_url=agents_gateway.gateway.url))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(codex_home), "LLM_GW_KEY": key}
    last = tmp_path / "last-message.txt"
    run = run_client([codex, "exec", "--strict-config", "--skip-git-repo-check", "--output-last-message", str(last),
                      PROMPT], env, work)
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    # The model's last answer echoes the command's output, which only the shell could have produced.
    assert "hello-from-tool" in last.read_text()

    lines = agents_gateway.request_lines(prefix, 2)
    assert [(line["endpoint"], line["model"], line["status"], line["stream"]) for line in lines] == \
        [("responses", model, 200, True)] * 2
    assert all(line["prompt_tokens"] and line["completion_tokens"] for line in lines)
    second = lines[1]["messages"]  # the request as the chat backends were asked (log_prompts)
    [call] = [c for m in second if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    assert call["function"]["name"] == "exec_command" and "echo hello-from-tool" in call["function"]["arguments"]
    [result] = [m for m in second if m["role"] == "tool"]
    assert result["tool_call_id"] == call["id"] and "hello-from-tool" in _text(result["content"])

    # What reached the upstream: one call per turn, the second carrying the command's output.
    upstream = [agents_gateway.upstream_requests(backend, line["request_id"]) for line in lines]
    assert [len(calls) for calls in upstream] == [1, 1]
    body = upstream[1][0]["body"]
    if backend == "anthropic":
        assert upstream[1][0]["path"] == "/v1/messages" and body["model"] == "claude-upstream"
        results = [block for m in body["messages"] if m["role"] == "user" and isinstance(m["content"], list)
                   for block in m["content"] if block.get("type") == "tool_result"]
        assert [r["tool_use_id"] for r in results] == [call["id"]]
        assert "hello-from-tool" in _text(results[0]["content"])
    else:
        assert upstream[1][0]["path"] == "/v1/chat/completions" and body["model"] == "fake-gpt"
        [tool] = [m for m in body["messages"] if m["role"] == "tool"]
        assert tool["tool_call_id"] == call["id"] and "hello-from-tool" in _text(tool["content"])
