"""The vLLM adapter: OpenAI's wire format, its error shapes, and reading /health and /metrics."""

from __future__ import annotations

import orjson
import pytest

from gateway.core.errors import ContextLengthExceeded
from gateway.core.types import ReportedLoad
from gateway.providers.vllm.metrics import health_call, metrics_call, parse_health, parse_metrics
from tests.providers.calls import KEY, adapter, deployment, request

NEW = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 4.0
vllm:num_requests_waiting{engine="1",model_name="m"} 1.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.75
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="m"} 1234.0
"""


def test_metrics_new_names_summed_over_engines_fullest_cache() -> None:
    assert parse_metrics(NEW) == ReportedLoad(waiting=5.0, running=5.0, kv_usage=0.75)


def test_metrics_old_kv_cache_name() -> None:
    old = NEW.replace("kv_cache_usage_perc", "gpu_cache_usage_perc")
    assert parse_metrics(old) == ReportedLoad(waiting=5.0, running=5.0, kv_usage=0.75)


def test_metrics_prefers_the_new_name_while_both_are_exported() -> None:
    both = NEW + 'vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.1\n'
    assert parse_metrics(both) == ReportedLoad(waiting=5.0, running=5.0, kv_usage=0.75)


@pytest.mark.parametrize("text", ["", "not prometheus {{{", "# TYPE other gauge\nother 1\n"])
def test_metrics_that_say_nothing_about_load(text: str) -> None:
    assert parse_metrics(text) is None


def test_health_and_metrics_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    d = deployment(monkeypatch, provider="vllm", base_url="http://gpu-1:8000/v1")
    assert (health_call(d).method, health_call(d).url) == ("GET", "http://gpu-1:8000/health")
    assert metrics_call(d).url == "http://gpu-1:8000/metrics"
    custom = deployment(monkeypatch, provider="vllm", base_url="http://gpu-1:8000/v1",
                        metrics_url="http://gpu-1:9000/metrics")
    assert metrics_call(custom).url == "http://gpu-1:9000/metrics"
    assert parse_health(200) and not parse_health(503) and not parse_health(500)


def test_chat_is_sent_as_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    d = deployment(monkeypatch, provider="vllm", base_url="http://gpu-1:8000/v1", model="meta-llama/Llama-3-8B")
    call = adapter("vllm").build_call(request({"model": "public", "messages": [], "top_k": 5}), d)
    assert call.url == "http://gpu-1:8000/v1/chat/completions"
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    assert orjson.loads(call.body or b"") == {"model": "meta-llama/Llama-3-8B", "messages": [], "top_k": 5}


@pytest.mark.parametrize("body", [
    {"error": {"message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens",
               "type": "BadRequestError", "param": None, "code": 400}},
    {"object": "error", "message": "This model's maximum context length is 4096 tokens.", "type": "BadRequestError",
     "param": None, "code": 400},
])
def test_context_errors_in_both_envelopes(body: dict[str, object]) -> None:
    error = adapter("vllm").map_error(400, {}, orjson.dumps(body), "d")
    assert isinstance(error, ContextLengthExceeded) and error.code == "context_length_exceeded"
