"""Which deployments serve a request, and in what order: the router.

A public model name resolves to a group (by name, alias, or wildcard route such as `openai/*`).
The group, its fallbacks (or the default chain) and the strategy of each make a `Plan`, which the
proxy asks for attempts. Everything the router learns about deployments lives in `Health`,
shared by all requests of this process.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.accounting.pricing import PriceBook
from gateway.config.file import ConfigError, Deployment, ModelGroup
from gateway.config.routing import RoutingOptions
from gateway.core.errors import InvalidRequest, ModelNotFound
from gateway.core.request import ClientRequest
from gateway.routing.breaker import CircuitListener
from gateway.routing.classifier import Embedder, ExemplarClassifier
from gateway.routing.complexity import Choice, choose
from gateway.routing.health import Health
from gateway.routing.plan import Plan, Stage
from gateway.routing.request import RouteRequest
from gateway.routing.scraper import LoadScraper, ProbeFor, no_probes
from gateway.routing.strategies import STRATEGIES, Signals, Strategy
from gateway.upstream.client import UpstreamClient

HEADER_STRATEGY = "x-gateway-strategy"
HEADER_TAG = "x-gateway-deployment-tag"
MAX_WILDCARD_GROUPS = 1024
DEFAULT_DEADLINE_S = 600.0


@dataclass(frozen=True, slots=True)
class Reading:
    """What a complexity model's embedding classifier made of a request: its score, or None when
    the features alone decide (no text to read, or the embeddings failed or were slow)."""

    score: float | None


class Router:
    def __init__(
        self,
        groups: list[ModelGroup],
        options: RoutingOptions | None = None,
        *,
        prices: PriceBook | None = None,
        workers: int = 1,
        default_deadline_s: float = DEFAULT_DEADLINE_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        on_circuit: CircuitListener | None = None,
        probe_for: ProbeFor = no_probes,
        embed: Embedder | None = None,
    ) -> None:
        self.options = options or RoutingOptions()
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.health = Health(self.options, workers, on_circuit)
        self.deadline_s = self.options.deadline_s or default_deadline_s
        self._groups: dict[str, ModelGroup] = {}
        self._aliases: dict[str, ModelGroup] = {}
        self._wildcards: list[tuple[str, str, ModelGroup]] = []  # (prefix, suffix, route)
        self._resolved: OrderedDict[str, ModelGroup] = OrderedDict()
        for group in groups:
            for deployment in group.deployments:
                # Fallback groups are called with the client's model name: each deployment names its own.
                if deployment.model is None and "*" not in group.name:
                    deployment.model = group.name
            if "*" in group.name:
                prefix, _, suffix = group.name.partition("*")
                self._wildcards.append((prefix, suffix, group))
            else:
                self._groups[group.name] = group
        # The most specific route wins: the one with the most literal characters.
        self._wildcards.sort(key=lambda route: -(len(route[0]) + len(route[1])))
        for group in groups:
            for alias in group.aliases:
                if alias in self._groups or alias in self._aliases:
                    raise ConfigError(f"config error: models: alias {alias!r} is already a model name or alias")
                self._aliases[alias] = group
        self._check(groups)
        signals = Signals(self.health, prices or PriceBook({}), self.rng, self.options)
        self._strategies: dict[str, Strategy] = {name: cls(signals) for name, cls in STRATEGIES.items()}
        self.scraper = LoadScraper(self.deployments(), self.health.load, self.options.metrics_interval_s, probe_for)
        # Complexity models with an embedding classifier, by name (none without an embedder).
        self._classifiers = {
            g.name: ExemplarClassifier(g.complexity.classifier, g.complexity.tiers, embed)
            for g in groups if embed is not None and g.complexity is not None and g.complexity.classifier is not None
        }

    def start(self, upstream: UpstreamClient) -> None:
        """Begin reading replicas' load (a no-op when no deployment has a load probe)."""
        self.scraper.start(upstream)

    async def close(self) -> None:
        await self.scraper.close()

    def observe_circuits(self) -> None:
        """Report circuits whose state the clock changed (open -> half-open) since anyone looked."""
        self.health.observe(self.clock())

    @property
    def groups(self) -> list[ModelGroup]:
        """The concrete groups, for /v1/models (wildcard routes are not models)."""
        return list(self._groups.values())

    def deployments(self) -> list[Deployment]:
        seen: dict[str, Deployment] = {}
        for group in [*self._groups.values(), *(route for _, _, route in self._wildcards)]:
            for deployment in group.deployments:
                seen.setdefault(deployment.id or "", deployment)
        return list(seen.values())

    def group(self, model: str) -> ModelGroup:
        group = self._groups.get(model) or self._aliases.get(model) or self._wildcard(model)
        if group is None:
            raise ModelNotFound(
                f"The model `{model}` does not exist or you do not have access to it.", param="model"
            )
        return group

    async def classify(self, request: ClientRequest) -> Reading | None:
        """Before planning: what a complexity model's embedding classifier made of the request
        (None when the model has none); never raises."""
        if self._classifiers:
            classifier = self._classifiers.get(self.group(request.model).name)
            if classifier is not None:
                return Reading(await classifier.reading(request.body))
        return None

    def plan(self, request: ClientRequest, reading: float | None = None) -> Plan:
        """The attempts for this request, tried in order until one answers; `reading` is what
        `classify` read of it, if anything."""
        group = self.group(request.model)
        above: list[ModelGroup] = []
        choice: Choice | None = None
        top: ModelGroup | None = None
        if group.complexity is not None:
            choice, group, above, top = self._tier(request, group, reading)
        strategy_name, tag = self._overrides(request, group)
        routed = RouteRequest.from_request(request, self.options.prefix_chars)
        stages = self.stages(group, routed, fallback=False, strategy=strategy_name)
        seen = {stage.group.name for stage in stages}
        for higher in above:  # a tiered request falls back up its tiers, after the tier's own chain
            if higher.name not in seen:
                seen.add(higher.name)
                stages.append(Stage(higher, self._strategy(higher, strategy_name), True))
        if tag is not None and not any(tag in d.tags or tag == d.region for s in stages for d in s.group.deployments):
            raise InvalidRequest(f"No deployment of `{request.model}` carries the tag {tag!r}.", param=HEADER_TAG)
        return Plan(self, request.model, routed, stages, tag, self.clock() + self.deadline_s, choice, top)

    def stages(
        self,
        group: ModelGroup,
        request: RouteRequest,
        *,
        fallback: bool,
        strategy: str | None = None,
    ) -> list[Stage]:
        """The group, then its fallback chain (its own, else the default one), each with its strategy."""
        names = group.fallbacks if group.fallbacks is not None else self.options.default_fallbacks
        stages = [Stage(group, self._strategy(group, strategy), fallback)]
        seen = {group.name}
        for name in names:
            if name not in seen:
                seen.add(name)
                chained = self.group(name)
                stages.append(Stage(chained, self._strategy(chained, strategy), True))
        return stages

    def _tier(
        self, request: ClientRequest, route: ModelGroup, reading: float | None
    ) -> tuple[Choice, ModelGroup, list[ModelGroup], ModelGroup]:
        """The `complexity` stage: its choice, the tier's group, the groups of the tiers above it,
        and the top tier's group."""
        assert route.complexity is not None
        choice = choose(route.complexity, request.model, request.body, request.headers, reading)
        tiers = route.complexity.tiers
        index = tiers.index(choice.tier)
        above = [self.group(t.model) for t in tiers[index + 1:]]
        return choice, self.group(choice.tier.model), above, self.group(tiers[-1].model)

    # resolution and checks

    def _strategy(self, group: ModelGroup, override: str | None) -> Strategy:
        return self._strategies[override or group.strategy or self.options.default_strategy]

    def _overrides(self, request: ClientRequest, group: ModelGroup) -> tuple[str | None, str | None]:
        headers = request.headers
        strategy, tag = headers.get(HEADER_STRATEGY), headers.get(HEADER_TAG)
        if strategy is None and tag is None:
            return None, None
        if not group.allow_header_overrides:
            header = HEADER_STRATEGY if strategy is not None else HEADER_TAG
            raise InvalidRequest(f"The model `{request.model}` does not allow choosing its routing by header.",
                                 param=header)
        if strategy is not None and strategy not in STRATEGIES:
            known = ", ".join(STRATEGIES)
            raise InvalidRequest(f"Unknown routing strategy {strategy!r} (known: {known}).", param=HEADER_STRATEGY)
        return strategy, tag

    def _wildcard(self, model: str) -> ModelGroup | None:
        cached = self._resolved.get(model)
        if cached is not None:
            self._resolved.move_to_end(model)
            return cached
        for prefix, suffix, route in self._wildcards:
            if model.startswith(prefix) and model.endswith(suffix) and len(model) > len(prefix) + len(suffix):
                upstream = model[len(prefix) : len(model) - len(suffix)]
                group = route.model_copy(update={
                    "name": model,
                    "deployments": [_for_model(d, upstream) for d in route.deployments],
                })
                self._resolved[model] = group
                if len(self._resolved) > MAX_WILDCARD_GROUPS:
                    self._resolved.popitem(last=False)
                return group
        return None

    def _check(self, groups: list[ModelGroup]) -> None:
        known = set(self._groups) | set(self._aliases)
        names = [self.options.default_strategy, *(g.strategy for g in groups if g.strategy)]
        for name in names:
            if name not in STRATEGIES:
                raise ConfigError(f"config error: unknown routing strategy {name!r} (known: {', '.join(STRATEGIES)})")
        references = [("routing.default_fallbacks", n) for n in self.options.default_fallbacks]
        for group in groups:
            references += [(f"models[{group.name}].fallbacks", n) for n in group.fallbacks or ()]
            for field in ("context_window_fallback", "content_policy_fallback"):
                target = getattr(group, field)
                if target is not None:
                    references.append((f"models[{group.name}].{field}", target))
        for group in groups:
            for tier in group.complexity.tiers if group.complexity else ():
                references.append((f"models[{group.name}].complexity.tiers[{tier.name}].model", tier.model))
                target = self._groups.get(tier.model) or self._aliases.get(tier.model)
                if target is not None and target.complexity is not None:
                    raise ConfigError(f"config error: models[{group.name}]: tier {tier.name!r} names another "
                                      f"complexity model, {tier.model!r}; a tier names a model with deployments")
            classifier = group.complexity.classifier if group.complexity else None
            if classifier is not None:
                references.append((f"models[{group.name}].complexity.classifier.embedding_model",
                                   classifier.embedding_model))
        for where, name in references:
            if name not in known:
                raise ConfigError(f"config error: {where}: no model group named {name!r}")


def _for_model(deployment: Deployment, upstream: str) -> Deployment:
    """A wildcard route's deployment for one model. It keeps the route's id, so the health of the
    endpoint is shared by every model sent there."""
    model = deployment.model.replace("*", upstream) if deployment.model else upstream
    return deployment.model_copy(update={"model": model})
