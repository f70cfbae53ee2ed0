"""The optional embedding classifier of a `complexity` model, blended with the feature score.

    complexity:
      tiers: [...]
      classifier:
        embedding_model: text-embed     # a model this gateway serves, called through the gateway itself
        method: centroid                # or knn: the k nearest exemplars vote
        weight: 0.5                     # score = (1 - weight) * features + weight * classifier
        exemplars:
          small: ["What is the capital of France?", ...]
          large: ["Prove that ...", ...]

The request's last user text is embedded and compared (cosine) with the exemplars, each labelled
with the smallest tier that should serve it. The reading is on the tiers' own scale: a tier stands
for the middle of its band of scores (with bands 0-0.1, 0.1-0.3, 0.3-1: 0.05, 0.2, 0.65), and the
reading is the nearest centroid's middle, or the mean of the k nearest exemplars' middles. So the
thresholds keep their meaning whatever the weight.

The exemplars are embedded in one call, started by the first request that needs them and not
bound to it (a request that stops waiting leaves it running for the next). When that call, or the
request's own, fails or takes longer than `timeout_s`, the request is scored on its features
alone; failed exemplars are tried again by a later request, at most every RETRY_S seconds. The
vectors are compared in plain Python: a centroid costs one dot product per tier; knn one per
exemplar, so keep its exemplars to a few hundred.
"""

from __future__ import annotations

import asyncio
import logging
import math
import operator
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.config.routing import ClassifierOptions, Tier
from gateway.core.errors import GatewayError

log = logging.getLogger("gateway.routing")

# (model, texts) -> one vector per text: the gateway's own /v1/embeddings (gateway/plugins/cache/embed.py).
Embedder = Callable[[str, list[str]], Awaitable[list[list[float]]]]
RETRY_S = 30.0
MAX_TEXT_CHARS = 8_000

Vector = list[float]


def normalised(vector: Vector) -> Vector:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def cosine(a: Vector, b: Vector) -> float:
    """Of two normalised vectors."""
    return sum(map(operator.mul, a, b))


def band_middles(tiers: list[Tier]) -> dict[str, float]:
    """Each tier's score band, by its middle: the value a reading of that tier stands for."""
    out, low = {}, 0.0
    for tier in tiers:
        high = tier.max_score if tier.max_score is not None else 1.0
        out[tier.name] = round((low + high) / 2, 4)
        low = high
    return out


def last_user_text(body: dict[str, Any]) -> str | None:
    """The text of the last user message (its text parts joined), or None."""
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
            return content[:MAX_TEXT_CHARS] if isinstance(content, str) and content.strip() else None
    return None


class ExemplarClassifier:
    def __init__(self, options: ClassifierOptions, tiers: list[Tier], embed: Embedder,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.embed = embed
        self.clock = clock
        middles = band_middles(tiers)
        self._labelled = [(text, middles[tier]) for tier, texts in options.exemplars.items() for text in texts]
        self._exemplars: list[tuple[Vector, float]] | None = None
        self._centroids: list[tuple[Vector, float]] = []
        self._loading: asyncio.Task[None] | None = None
        self._retry_at = 0.0

    async def reading(self, body: dict[str, Any]) -> float | None:
        """The classifier's score for this request, or None: no text, or the embeddings failed."""
        text = last_user_text(body)
        if text is None:
            return None
        try:
            async with asyncio.timeout(self.options.timeout_s):
                if self._exemplars is None:
                    loading = self._load()
                    if loading is None:
                        return None
                    await asyncio.shield(loading)
                [vector] = await self.embed(self.options.embedding_model, [text])
        except (GatewayError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            log.warning("complexity classifier: the embedding call failed (%s); the feature score alone",
                        getattr(exc, "code", None) or type(exc).__name__)
            return None
        return self.classify(normalised(vector))

    def classify(self, vector: Vector) -> float:
        if self.options.method == "centroid":
            return max(self._centroids, key=lambda c: cosine(vector, c[0]))[1]
        scored = sorted(((cosine(vector, v), middle) for v, middle in self._exemplars or ()), reverse=True)
        nearest = scored[: self.options.k]
        return round(sum(middle for _, middle in nearest) / len(nearest), 4)

    def _load(self) -> asyncio.Task[None] | None:
        """The exemplars' embedding call under way, one at a time; after a failure, None until RETRY_S."""
        if self._loading is not None and not self._loading.done():
            return self._loading
        if self.clock() < self._retry_at:
            return None
        self._retry_at = self.clock() + RETRY_S
        self._loading = asyncio.create_task(self._embed_exemplars())
        # Its failure is logged by the request that waits for it; none may be waiting any more.
        self._loading.add_done_callback(lambda task: task.cancelled() or task.exception())
        return self._loading

    async def _embed_exemplars(self) -> None:
        vectors = await self.embed(self.options.embedding_model, [text for text, _ in self._labelled])
        if len(vectors) != len(self._labelled):
            raise ValueError("the embeddings answer has a vector per input")
        exemplars = [(normalised(v), middle) for v, (_, middle) in zip(vectors, self._labelled, strict=True)]
        by_middle: dict[float, list[Vector]] = {}
        for vector, middle in exemplars:
            by_middle.setdefault(middle, []).append(vector)
        self._centroids = [(normalised([sum(column) / len(group) for column in zip(*group, strict=True)]), middle)
                           for middle, group in by_middle.items()]
        self._exemplars = exemplars
