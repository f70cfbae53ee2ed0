"""What a vLLM server says about itself: `/health`, and the load figures of its `/metrics` page.

`/metrics` is Prometheus text; the KV-cache gauge was renamed from `vllm:gpu_cache_usage_perc` to
`vllm:kv_cache_usage_perc` (the old name is gone from new releases), so both are read. The requests
are described here and sent by gateway.upstream.client, like any other.
"""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from gateway.config.file import Deployment
from gateway.core.types import ReportedLoad
from gateway.upstream.client import UpstreamCall

WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")  # new name first
PROBE_TIMEOUT_S = 2.0


def server_root(deployment: Deployment) -> str:
    """`http://host:8000` from `http://host:8000/v1`: /health and /metrics live at the root."""
    return deployment.base_url.removesuffix("/v1")


def _probe(url: str, deployment: Deployment) -> UpstreamCall:
    return UpstreamCall(method="GET", url=url, headers={}, body=None, timeout_s=PROBE_TIMEOUT_S,
                        connect_timeout_s=min(PROBE_TIMEOUT_S, deployment.connect_timeout_s or PROBE_TIMEOUT_S),
                        deployment_id=deployment.id or "")


def health_call(deployment: Deployment) -> UpstreamCall:
    return _probe(server_root(deployment) + "/health", deployment)


def metrics_call(deployment: Deployment) -> UpstreamCall:
    return _probe(deployment.metrics_url or server_root(deployment) + "/metrics", deployment)


def parse_health(status: int) -> bool:
    """/health answers 200 with an empty body when the engine is up; 503 (500 before late 2025) when dead."""
    return status == 200


def parse_metrics(text: str) -> ReportedLoad | None:
    """The load figures of a /metrics page, summed over its engines (data parallelism); None when it
    has none of them (not vLLM, or broken)."""
    waiting = running = 0.0
    kv: dict[str, float] = {}
    seen = False
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not math.isfinite(sample.value):
                    continue
                if sample.name == WAITING:
                    waiting += sample.value
                elif sample.name == RUNNING:
                    running += sample.value
                elif sample.name in KV_CACHE:
                    # A replica in the middle of the rename may export both: prefer the new name.
                    kv[sample.name] = max(kv.get(sample.name, 0.0), sample.value)
                else:
                    continue
                seen = True
    except ValueError:  # not Prometheus text
        return None
    if not seen:
        return None
    kv_usage = kv.get(KV_CACHE[0], kv.get(KV_CACHE[1], 0.0))
    return ReportedLoad(waiting=waiting, running=running, kv_usage=min(max(kv_usage, 0.0), 1.0))
