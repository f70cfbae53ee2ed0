"""Reading `/metrics` the way Prometheus does: every sample, summed over the labels a test leaves open."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.procs import MASTER_KEY


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            Sample(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]

    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def total(self, name: str, **labels: str) -> float:
        """The sum of `name` over every series whose labels include `labels`."""
        return sum(
            s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def series(self, name: str) -> list[dict[str, str]]:
        return [s.labels for s in self.samples if s.name == name]


def scrape(base: str, token: str = MASTER_KEY) -> Scrape:
    """With no metrics token set, the master key opens /metrics."""
    headers = {"Authorization": f"Bearer {token}"}
    response = httpx.get(base + "/metrics", headers=headers, timeout=10)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)
