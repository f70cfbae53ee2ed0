"""How busy a deployment is: requests this process has in flight there, plus, for vLLM, what the
replica itself last reported (which includes other gateways' requests).

A scrape goes stale until the next one, while this process's own count is always current. So
the load is: our requests in flight now, plus the requests the replica held at the scrape that
were not ours (other clients'), plus penalties for what the scrape said of its pressure: a
queue (a waiting request counts twice) and a KV cache close to full (preemption ahead).
Without a scrape, the load is the local in-flight count.
"""

from __future__ import annotations

from gateway.core.types import ReportedLoad

# KV use below the knee costs nothing; from there to full it adds up to KV_WEIGHT requests.
KV_KNEE = 0.8
KV_WEIGHT = 4.0


def pressure(load: ReportedLoad) -> float:
    """The reported load beyond the requests themselves, in units of requests."""
    return load.waiting + KV_WEIGHT * max(0.0, (load.kv_usage - KV_KNEE) / (1 - KV_KNEE))


class LoadBoard:
    def __init__(self) -> None:
        self._inflight: dict[str, int] = {}
        self._reported: dict[str, tuple[ReportedLoad, int]] = {}  # id -> (scrape, in flight then)

    def started(self, deployment_id: str) -> None:
        self._inflight[deployment_id] = self._inflight.get(deployment_id, 0) + 1

    def ended(self, deployment_id: str) -> None:
        self._inflight[deployment_id] = max(0, self._inflight.get(deployment_id, 0) - 1)

    def inflight(self, deployment_id: str) -> int:
        return self._inflight.get(deployment_id, 0)

    def report(self, deployment_id: str, load: ReportedLoad | None) -> None:
        """A fresh scrape, or None when the replica could not be read (its figures are dropped)."""
        if load is None:
            self._reported.pop(deployment_id, None)
        else:
            self._reported[deployment_id] = (load, self.inflight(deployment_id))

    def reported(self, deployment_id: str) -> ReportedLoad | None:
        entry = self._reported.get(deployment_id)
        return entry[0] if entry else None

    def load(self, deployment_id: str) -> float:
        inflight = self._inflight.get(deployment_id, 0)
        entry = self._reported.get(deployment_id)
        if entry is None:
            return float(inflight)
        scraped, inflight_then = entry
        others = max(0.0, scraped.running + scraped.waiting - inflight_then)
        return inflight + others + pressure(scraped)
