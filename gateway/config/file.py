"""The config file: public models and their deployments, plus optional process settings.

A bad file stops start-up with one line naming the field and the reason (`ConfigError`).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from gateway.config.plugins import PluginsSection
from gateway.config.routing import ComplexityOptions, RoutingOptions
from gateway.config.settings import Settings
from gateway.secrets import KeyRing, SecretsError


class ConfigError(Exception):
    """Raised with a single human-readable line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """USD per million tokens (and per request, where a provider charges so), and per unit for
    the endpoints billed otherwise: images (by size, `per_image` for sizes not listed), audio
    minutes heard, million characters spoken, rerank searches."""

    input_per_mtok: Decimal = Field(default=Decimal(0), ge=0)
    output_per_mtok: Decimal = Field(default=Decimal(0), ge=0)
    cached_input_per_mtok: Decimal | None = Field(default=None, ge=0)
    per_request: Decimal = Field(default=Decimal(0), ge=0)
    per_image: Decimal = Field(default=Decimal(0), ge=0)
    per_image_by_size: dict[str, Decimal] = Field(default_factory=dict)
    per_audio_minute: Decimal = Field(default=Decimal(0), ge=0)
    per_million_characters: Decimal = Field(default=Decimal(0), ge=0)
    per_search: Decimal = Field(default=Decimal(0), ge=0)


class ModelLimits(_Strict):
    """Caps on one public model over every caller (gateway/accounting/limits/): protect its upstream and its bill."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_parallel: int | None = Field(default=None, ge=1)
    budget_usd: Decimal | None = Field(default=None, ge=0)
    # None: the budget never resets; else calendar-aligned in settings.limits_timezone.
    budget_period: Literal["daily", "weekly", "monthly"] | None = None


class Deployment(_Strict):
    provider: str = "openai"
    # Empty: the provider's default (a preset's service URL); an error for providers without one.
    base_url: str = ""
    # The upstream's own model id; defaults to the public name.
    model: str | None = None
    id: str | None = None
    # The name of an environment variable holding the upstream key: never the key itself.
    api_key_env: str | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    connect_timeout_s: float | None = Field(default=None, gt=0)
    price: Price | None = None
    # Routing (gateway/routing/): the share of `weighted` traffic, labels a request may ask for,
    # caps that spread load before the provider answers 429, and the window that fit checks use.
    weight: float = Field(default=1.0, gt=0)
    tags: list[str] = Field(default_factory=list)
    region: str | None = None
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    context_window: int | None = Field(default=None, ge=1)
    # vLLM's Prometheus endpoint, read for load; provider `vllm` defaults to <origin>/metrics.
    metrics_url: str | None = None
    # Providers (gateway/providers/): Azure's `api-version`; the `max_tokens` Anthropic requires
    # when a request has none; the key encrypted with gateway.secrets instead of `api_key_env`;
    # anything else an adapter or a plugin reads (each documents its keys).
    api_version: str | None = None
    max_tokens_default: int | None = Field(default=None, ge=1)
    api_key_encrypted: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    # Which API this deployment is reached by for OpenAI's Responses API (gateway/dialects/responses/):
    # "native" (relayed as it is), "chat" (translated to Chat Completions) or "only" (it has no chat
    # API: chat and messages clients are translated to Responses). None: native for OpenAI's own
    # api.openai.com and for Azure's v1 API (`api_version: v1`), chat for everything else.
    responses_api: Literal["native", "chat", "only"] | None = None

    _api_key: SecretStr | None = PrivateAttr(default=None)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def api_key(self) -> SecretStr | None:
        return self._api_key


class ModelGroup(_Strict):
    # A name with `*` is a wildcard route (`openai/*`): the part `*` matched is the upstream model.
    name: str = Field(min_length=1)
    # A name that stands for tiers, each a model group, chosen per request (gateway/routing/complexity.py).
    # Declared before `deployments`, whose check reads it.
    complexity: ComplexityOptions | None = None
    # Empty only for a `complexity` model, whose tiers name the groups that serve it.
    deployments: list[Deployment] = Field(default_factory=list, validate_default=True)
    # Routing (gateway/routing/); None means the `routing:` section's default.
    strategy: str | None = None
    fallbacks: list[str] | None = None
    aliases: list[str] = Field(default_factory=list)
    context_window_fallback: str | None = None
    content_policy_fallback: str | None = None
    retries: int | None = Field(default=None, ge=0)
    # Whether a request may pick the strategy or a deployment tag by header.
    allow_header_overrides: bool = False
    # Rate limits and a budget for the model as a whole, over all keys (gateway/accounting/limits/).
    limits: ModelLimits | None = None

    @field_validator("deployments")
    @classmethod
    def _deployments_or_tiers(cls, deployments: list[Deployment], info: ValidationInfo) -> list[Deployment]:
        tiered = info.data.get("complexity") is not None
        if not tiered and not deployments:
            # The same words pydantic uses for a list that is too short: one message for one mistake.
            raise PydanticCustomError("too_short", "List should have at least 1 item after validation, not 0 "
                                                   "(or, instead, `complexity:` tiers)")
        if tiered and deployments:
            raise ValueError("a `complexity` model has tiers instead of deployments")
        return deployments


class Config(_Strict):
    settings: dict[str, Any] = Field(default_factory=dict)
    models: list[ModelGroup] = Field(default_factory=list)
    routing: RoutingOptions = Field(default_factory=RoutingOptions)
    # Guardrails, the response cache and third-party plugins, per team and key (gateway/plugins/).
    plugins: PluginsSection = Field(default_factory=PluginsSection)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelGroup]) -> list[ModelGroup]:
        seen: set[str] = set()
        for group in models:
            if group.name in seen:
                raise ValueError(f"model {group.name!r} is defined twice")
            seen.add(group.name)
        return models


# Provider names, or name -> adapter class: a class's `default_base_url` and `default_api_key_env`
# (the OpenAI-compatible presets have them) fill in what a deployment leaves out.
KnownProviders = Collection[str] | Mapping[str, type]


def load_config(path: str | Path, known_providers: KnownProviders) -> tuple[Config, Settings]:
    """Parse and validate the file, resolve key references, and build the settings."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"config error: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config error: {path} is not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config error: {path} must be a mapping with a 'models' list")
    return config_from_dict(raw, known_providers)


def config_from_dict(raw: dict[str, Any], known_providers: KnownProviders) -> tuple[Config, Settings]:
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("config error: " + _first_error(exc)) from None
    try:
        settings = Settings(**config.settings)
    except ValidationError as exc:
        raise ConfigError("config error: settings." + _first_error(exc)) from None
    for g, group in enumerate(config.models):
        for d, deployment in enumerate(group.deployments):
            where = f"models[{g}].deployments[{d}]"
            deployment.id = deployment.id or f"{group.name}/{d}"
            if deployment.provider not in known_providers:
                known = ", ".join(sorted(known_providers))
                raise ConfigError(
                    f"config error: {where}.provider: unknown provider {deployment.provider!r} (known: {known})"
                )
            _fill_defaults(deployment, known_providers, where)
            if deployment.api_key_env:
                value = os.environ.get(deployment.api_key_env)
                if not value:
                    raise ConfigError(
                        f"config error: {where}.api_key_env: environment variable "
                        f"{deployment.api_key_env} is not set"
                    )
                deployment._api_key = SecretStr(value)
            if deployment.api_key_encrypted:
                deployment._api_key = SecretStr(_decrypt_key(deployment, where))
    return config, settings


def _fill_defaults(deployment: Deployment, known_providers: KnownProviders, where: str) -> None:
    adapter = known_providers.get(deployment.provider) if isinstance(known_providers, Mapping) else None
    # An adapter may fill in what its deployments leave out (Bedrock: region, URL) or say what is missing.
    configure = getattr(adapter, "configure", None)
    problem = configure(deployment) if callable(configure) else None
    if problem:
        raise ConfigError(f"config error: {where}.{problem}")
    if not deployment.base_url:
        default_url = getattr(adapter, "default_base_url", None)
        if not isinstance(default_url, str):
            raise ConfigError(f"config error: {where}.base_url: required for provider {deployment.provider!r}")
        deployment.base_url = default_url.rstrip("/")
    default_key_env = getattr(adapter, "default_api_key_env", None)
    if not deployment.api_key_env and not deployment.api_key_encrypted and isinstance(default_key_env, str):
        deployment.api_key_env = default_key_env


def _decrypt_key(deployment: Deployment, where: str) -> str:
    if deployment.api_key_env:
        raise ConfigError(f"config error: {where}: set api_key_env or api_key_encrypted, not both")
    try:
        return KeyRing.from_env().decrypt(deployment.api_key_encrypted or "")
    except SecretsError as exc:
        raise ConfigError(f"config error: {where}.api_key_encrypted: {exc}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ""
    for part in error["loc"]:
        location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    return f"{location or '(top level)'}: {message}"
