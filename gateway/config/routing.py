"""The `routing:` section of the config file: defaults for every model group.

Kept apart from `gateway.config.file` so that the routing package owns its knobs; it refers to no
other config class, so `gateway.config.file` can import it without a cycle.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BreakerOptions(_Strict):
    """Per deployment: open once `window_s` holds at least `min_requests` attempts, `failures`
    failures and `min_failure_ratio` of failures; stay open `cooldown_s`; then close after
    `probes` good probes in a row. The volume floor keeps a deployment that fails a modest share
    of requests from tripping on an unlucky first few."""

    failures: int = Field(default=5, ge=1)
    min_failure_ratio: float = Field(default=0.5, ge=0, le=1)
    min_requests: int = Field(default=20, ge=1)
    window_s: float = Field(default=30.0, gt=0)
    cooldown_s: float = Field(default=30.0, gt=0)
    probes: int = Field(default=1, ge=1)


class RoutingOptions(_Strict):
    # `priority` keeps a group's configured order: the behaviour before strategies existed.
    default_strategy: str = "priority"
    # Groups tried, in order, after a group with no `fallbacks` of its own has failed.
    default_fallbacks: list[str] = Field(default_factory=list)
    # The whole request, every attempt and backoff included; None: settings.upstream_timeout_s.
    deadline_s: float | None = Field(default=None, gt=0)
    max_attempts: int = Field(default=4, ge=1)
    # Extra rounds over a group's deployments after each has failed once, before falling back.
    retries: int = Field(default=1, ge=0)
    backoff_base_s: float = Field(default=0.2, ge=0)
    backoff_max_s: float = Field(default=5.0, ge=0)
    # A longer upstream retry-after is cut to this when cooling the deployment down.
    max_retry_after_s: float = Field(default=60.0, ge=0)
    # How fast the latency average forgets (weight of the newest sample), and how often the
    # `latency` strategy tries another deployment than the fastest so a recovered one is seen.
    latency_alpha: float = Field(default=0.3, gt=0, le=1)
    latency_exploration: float = Field(default=0.05, ge=0, le=1)
    breaker: BreakerOptions = Field(default_factory=BreakerOptions)
    # vLLM /metrics is read this often; 0 turns scraping off.
    metrics_interval_s: float = Field(default=2.0, ge=0)
    # Prefix affinity hashes this many leading characters of the prompt, and lets a replica
    # take at most `prefix_load_factor` times the average load before spilling to the next.
    prefix_chars: int = Field(default=2048, ge=16)
    prefix_load_factor: float = Field(default=1.25, ge=1)


class Tier(_Strict):
    """One tier of a `complexity` model: a name, the model group that serves it, and the highest
    score it takes (None on the last tier: everything above the others)."""

    name: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1)
    max_score: float | None = Field(default=None, ge=0, le=1)


class ClassifierOptions(_Strict):
    """An embedding classifier beside the feature score (gateway/routing/classifier.py): the last
    user text is embedded by `embedding_model` (a model this gateway serves, called through the
    gateway itself) and compared with labelled exemplars; its reading counts `weight` of the score."""

    embedding_model: str = Field(min_length=1)
    # Texts labelled with the smallest tier that should serve them, by tier name.
    exemplars: dict[str, list[str]] = Field(min_length=1)
    method: Literal["centroid", "knn"] = "centroid"
    k: int = Field(default=5, ge=1)
    weight: float = Field(default=0.5, ge=0, le=1)
    # Past this, the request is routed on the feature score alone.
    timeout_s: float = Field(default=1.0, gt=0)


class ComplexityOptions(_Strict):
    """A model name that stands for tiers, lowest first (gateway/routing/complexity.py)."""

    tiers: list[Tier] = Field(min_length=2)
    # Whether a request may pin a tier with the x-gateway-tier header.
    allow_tier_header: bool = False
    # Off unless configured: the features alone score the request.
    classifier: ClassifierOptions | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ComplexityOptions:
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError("tier names must differ")
        bounds = [t.max_score for t in self.tiers[:-1]]
        if any(b is None for b in bounds):
            raise ValueError("every tier but the last needs max_score")
        if bounds != sorted(bounds):  # type: ignore[type-var]
            raise ValueError("max_score must rise from tier to tier")
        if self.tiers[-1].max_score is not None:
            raise ValueError("the last tier takes every higher score: leave its max_score out")
        if self.classifier is not None:
            unknown = sorted(set(self.classifier.exemplars) - set(names))
            if unknown:
                raise ValueError(f"classifier exemplars name tiers that do not exist: {', '.join(unknown)}")
            if not any(self.classifier.exemplars.values()):
                raise ValueError("the classifier needs at least one exemplar")
        return self
