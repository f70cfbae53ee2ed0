"""The complexity classifier: exemplars by nearest centroid or k nearest, blended with the features;
any failure of the embeddings leaves the feature score alone. Then through a real gateway, whose
embeddings come from the fake upstream (a hash of the text: only identical texts are alike)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.config.file import Config, ConfigError
from gateway.config.routing import ComplexityOptions
from gateway.core.errors import UpstreamError
from gateway.routing.classifier import RETRY_S, ExemplarClassifier, band_middles, last_user_text
from gateway.routing.complexity import choose, score
from gateway.routing.router import Router
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment, free_port, ledger_rows

TIERS = [{"name": "small", "model": "small-group", "max_score": 0.1},
         {"name": "medium", "model": "medium-group", "max_score": 0.3},
         {"name": "large", "model": "large-group"}]
# Two-dimensional "embeddings": easy questions point one way, hard ones the other.
AXES = {"easy": [1.0, 0.0], "hard": [0.0, 1.0], "mixed": [0.6, 0.8], "leaning-easy": [0.9, 0.3]}


def options(**extra: Any) -> ComplexityOptions:
    classifier = {"embedding_model": "embed", "exemplars": {"small": ["easy"], "large": ["hard", "mixed"]}, **extra}
    return ComplexityOptions.model_validate({"tiers": TIERS, "classifier": classifier})


class Embeddings:
    """An embedder that answers from AXES, or fails as told."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.fail: Exception | None = None
        self.delay_s = 0.0

    async def __call__(self, model: str, texts: list[str]) -> list[list[float]]:
        self.calls.append(texts)
        await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        return [AXES[text] for text in texts]


def body(text: str) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": text}]}


def classifier(opts: ComplexityOptions, embed: Embeddings, clock: Any = time.monotonic) -> ExemplarClassifier:
    assert opts.classifier is not None
    return ExemplarClassifier(opts.classifier, opts.tiers, embed, clock)


def test_each_tier_stands_for_the_middle_of_its_band() -> None:
    assert band_middles(options().tiers) == {"small": 0.05, "medium": 0.2, "large": 0.65}
    assert last_user_text({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]},
                                        {"role": "assistant", "content": "b"}]}) == "a"
    assert last_user_text({"messages": [{"role": "system", "content": "x"}]}) is None


async def test_nearest_centroid_and_k_nearest_read_the_request() -> None:
    embed = Embeddings()
    centroid = classifier(options(), embed)
    assert await centroid.reading(body("easy")) == 0.05
    assert await centroid.reading(body("leaning-easy")) == 0.05
    assert await centroid.reading(body("hard")) == 0.65
    assert len(embed.calls[0]) == 3 and len(embed.calls) == 4  # the exemplars once, then one text a request
    knn = classifier(options(method="knn", k=2), Embeddings())
    # Nearest to "leaning-easy": easy (small), then mixed (large): the mean of their middles.
    assert await knn.reading(body("leaning-easy")) == pytest.approx((0.05 + 0.65) / 2)


def test_the_reading_is_blended_at_its_weight_and_moves_the_tier() -> None:
    opts = options(weight=0.5)
    hi = body("Hi!")
    features = score(hi)
    assert score(hi, None, 0.65, 0.5) == pytest.approx((features + 0.65) / 2, abs=1e-4)
    assert choose(opts, "auto", hi, {}).tier.name == "small"
    assert choose(opts, "auto", hi, {}, reading=0.65).tier.name == "large"
    assert choose(options(weight=0.0), "auto", hi, {}, reading=0.65).tier.name == "small"


async def test_a_failed_or_slow_embedding_leaves_the_feature_score() -> None:
    now = [0.0]
    embed = Embeddings()
    embed.fail = UpstreamError("down", status=503, type="server_error", code="embedding_failed")
    reader = classifier(options(), embed, clock=lambda: now[0])
    assert await reader.reading(body("hard")) is None
    assert await reader.reading(body("hard")) is None
    assert len(embed.calls) == 1, "failed exemplars are not asked for again on every request"
    embed.fail = None
    now[0] += RETRY_S + 1
    assert await reader.reading(body("hard")) == 0.65
    embed.fail = UpstreamError("down", status=429, type="rate_limit_error", code="rate_limit_exceeded")
    assert await reader.reading(body("hard")) is None  # the request's own embedding failed
    embed.fail, embed.delay_s = None, 0.2
    slow = classifier(options(timeout_s=0.05), embed, clock=lambda: now[0])
    assert await slow.reading(body("hard")) is None
    assert await reader.reading({"messages": []}) is None  # nothing to read: no call


def test_exemplars_name_known_tiers_and_a_served_embedding_model() -> None:
    with pytest.raises(ValueError, match="tiers that do not exist: huge"):
        options(exemplars={"huge": ["x"]})
    models = [{"name": n, "deployments": [{"provider": "openai", "base_url": "http://x/v1"}]}
              for n in ("small-group", "medium-group", "large-group")]
    config = Config.model_validate({"models": [*models, {"name": "auto", "complexity": {
        "tiers": TIERS, "classifier": {"embedding_model": "nowhere", "exemplars": {"small": ["x"]}}}}]})
    with pytest.raises(ConfigError, match=r"classifier\.embedding_model: no model group named 'nowhere'"):
        Router(config.models)


# Through a real gateway.

EASY_BUT_LABELLED_LARGE = "Hi there, quick one!"


@pytest.fixture(scope="module")
def gw(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    exemplars = {"small": ["What is the capital of France?"], "large": [EASY_BUT_LABELLED_LARGE]}

    def tiered(embedding_model: str) -> dict[str, Any]:
        return {"tiers": TIERS, "classifier": {"embedding_model": embedding_model, "exemplars": exemplars,
                                               "method": "knn", "k": 1, "weight": 1.0}}

    models = [{"name": "small-group", "deployments": [deployment(upstream, model="fake-small")]},
              {"name": "medium-group", "deployments": [deployment(upstream, model="fake-medium")]},
              {"name": "large-group", "deployments": [deployment(upstream, model="fake-large")]},
              {"name": "embed", "deployments": [deployment(upstream, model="fake-embedding")]},
              {"name": "embed-down", "retries": 0, "deployments": [{"provider": "openai", "base_url": dead}]},
              {"name": "auto", "complexity": tiered("embed")},
              {"name": "auto-down", "complexity": tiered("embed-down")}]
    gateway = Gateway(tmp_path_factory.mktemp("classifier"), models, settings={"ledger_flush_s": 0.05})
    yield gateway
    gateway.close()


def test_the_classifier_routes_through_the_gateways_own_embeddings(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)

    def ask(model: str, text: str) -> tuple[str, str]:
        raw = client.chat.completions.with_raw_response.create(model=model,
                                                               messages=[{"role": "user", "content": text}])
        return raw.parse().model, raw.headers["x-request-id"]

    # The features alone send this greeting to the small tier; its exemplar says large, at weight 1.
    served, labelled = ask("auto", EASY_BUT_LABELLED_LARGE)
    assert served == "fake-large"
    assert ask("auto", "What is the capital of France?")[0] == "fake-small"
    # The embedding model is down: the feature score alone, and the request is served all the same.
    served, fallen = ask("auto-down", EASY_BUT_LABELLED_LARGE)
    assert served == "fake-small"
    found = ledger_rows(gw, [labelled, fallen])
    rows = [found[labelled], found[fallen]]
    assert [r["complexity_tier"] for r in rows] == ["large", "small"]
    assert rows[0]["complexity_score"] == 0.65 and rows[1]["complexity_score"] < 0.1
    # The embedding calls are ledger rows of their own, tagged with their purpose.
    ledger = httpx.get(gw.base + "/admin/api/ledger/requests", params={"limit": 100},
                       headers={"authorization": f"Bearer {MASTER_KEY}"}).json()["data"]
    purposes = [r for r in ledger if r["requested_model"] == "embed"]
    assert purposes and all("complexity-routing" in str(r["tags"]) for r in purposes)
    metrics = httpx.get(gw.base + "/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}).text
    assert 'llm_gateway_complexity_classifier_total{model="auto",outcome="used"} 2.0' in metrics
    assert 'llm_gateway_complexity_classifier_total{model="auto-down",outcome="features_only"} 1.0' in metrics
