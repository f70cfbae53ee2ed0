"""Claude Code (`claude -p`) through the gateway's `/v1/messages`, on a model name it does not know
(so it sends a `system` entry inside `messages`), through one tool round trip: the model calls
Bash, Claude Code runs it, the model answers the result."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import MODELS, AgentsGateway, client_binary, run_client

PROMPT = "Use the Bash tool to run the shell command 'echo hello-from-tool' and tell me its output."


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


@pytest.mark.parametrize("backend", ["anthropic", "openai"])
def test_a_tool_round_trip(agents_gateway: AgentsGateway, backend: str, tmp_path: Path) -> None:
    claude = client_binary("claude")
    key, prefix = agents_gateway.new_key(f"claude-code-{backend}")
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": agents_gateway.gateway.base, "ANTHROPIC_API_KEY": key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    model = MODELS[backend]
    # The prompt after `--`: otherwise --allowedTools takes it as one more tool pattern.
    run = run_client([claude, "-p", "--model", model, "--allowedTools", "Bash(echo:*)", "--", PROMPT], env, work)
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    # The model's last answer echoes the tool's result, which only Bash could have produced.
    assert "hello-from-tool" in run.stdout

    lines = agents_gateway.request_lines(prefix, 2)
    assert [(line["endpoint"], line["model"], line["status"], line["stream"]) for line in lines] == \
        [("messages", model, 200, True)] * 2
    assert all(line["prompt_tokens"] and line["completion_tokens"] for line in lines)
    first, second = lines[0]["messages"], lines[1]["messages"]
    # messages[1] of Claude Code's request was a system entry: it is folded into the system prompt.
    assert first[0]["role"] == "system" and "system" not in [m["role"] for m in first[1:]]
    assert PROMPT in _text(first[1]["content"])
    [call] = [c for m in second if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    assert call["function"]["name"] == "Bash" and "echo hello-from-tool" in call["function"]["arguments"]
    [result] = [m for m in second if m["role"] == "tool"]
    assert result["tool_call_id"] == call["id"] and "hello-from-tool" in _text(result["content"])

    # What reached the upstream: one call per turn, the second carrying the tool's result.
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
        assert [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"] == [call["id"]]
