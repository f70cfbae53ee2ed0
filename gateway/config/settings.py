"""Process settings: everything that is not about models.

Read from environment variables prefixed `GATEWAY_`; the config file's `settings:` section
may set them too, and the environment wins over the file.
"""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)

    master_key: SecretStr | None = None
    redis_url: SecretStr | None = None
    database_url: SecretStr | None = None
    # Every Redis key the gateway writes starts with this, so several gateways can share a Redis.
    redis_prefix: str = Field(default="gw", pattern=r"^[A-Za-z0-9_\-]{1,32}$")
    # The embedded default keeps its SQLite files and spill files here.
    data_dir: str = ".gateway"
    database_pool_size: int = Field(default=10, ge=1, le=1000)

    # Virtual keys (gateway/identity/keys.py, gateway/identity/auth.py, docs/keys.md).
    # How long a worker trusts what it read about a key; changes reach every worker at once
    # through Redis pub/sub (or a poll of the store without Redis), so this only bounds staleness
    # when those fail.
    auth_cache_ttl_s: float = Field(default=30.0, gt=0, le=3600)
    # After a rotation the old key keeps working this long unless the request names another grace.
    key_rotation_grace_s: float = Field(default=86_400.0, ge=0)
    # Failed authentication (gateway/identity/throttle.py): after this many wrong keys (or admin UI
    # passwords) from one client address, or for one key prefix or user name, one more try every
    # auth_failure_refill_s; everything else from there is 429 until then.
    auth_failure_burst: int = Field(default=20, ge=1, le=100_000)
    auth_failure_refill_s: float = Field(default=1.0, gt=0, le=3600)

    # The admin UI (admin/ui/, docs/admin.md). Its session cookies are signed with a key
    # derived from this secret; unset, from the master key (changing it then signs everyone out).
    admin_ui_enabled: bool = True
    admin_session_secret: SecretStr | None = None
    admin_session_ttl_s: float = Field(default=8 * 3600.0, ge=60, le=30 * 86_400)

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Past this many requests in flight in one worker the gateway answers 503 at once.
    max_inflight: int = Field(default=1024, ge=1)
    overload_retry_after_s: float = Field(default=1.0, gt=0)
    drain_seconds: float = Field(default=30.0, ge=0)

    # Slow clients (gateway/edge/protocol.py, gateway/edge/body.py, gateway/edge/relay.py): what a
    # client controls is bounded. Its request headers must be complete this long after the request
    # began (or the connection opened); its body must arrive within the total, with no gap longer
    # than the idle limit (else 408); and a stream it stops reading may wait this long for room in
    # the send buffer before it is cancelled, its upstream closed, its connection dropped.
    client_header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    client_body_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    client_body_idle_s: float = Field(default=15.0, gt=0, le=3600)
    client_send_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # Bytes of answer kept for a client that reads slowly before writes wait (the transport's high
    # water mark; the kernel's socket buffer comes on top).
    client_send_buffer_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)

    upstream_connect_timeout_s: float = Field(default=5.0, gt=0)
    upstream_timeout_s: float = Field(default=600.0, gt=0)
    upstream_max_connections: int = Field(default=1000, ge=1)

    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Rate limits and budgets (gateway/accounting/limits/, docs/limits.md).
    # redis_url is a Redis Cluster (the limiter then groups each request's checks by slot).
    redis_cluster: bool = False
    # Redis unreachable: `closed` answers limited requests 503; `open` enforces limits per process.
    limits_failure_mode: Literal["closed", "open"] = "closed"
    # The longest a limit check may wait for Redis (also its socket timeouts).
    limits_redis_timeout_s: float = Field(default=0.25, gt=0, le=5)
    # After Redis fails, how long the failure mode applies before Redis is asked again (on a
    # cluster at most redis_backend.CLUSTER_RECHECK_S: a replica takes over by itself).
    limits_redis_recheck_s: float = Field(default=1.0, gt=0, le=60)
    # Budget periods (daily, weekly, monthly) start at midnight in this IANA time zone.
    limits_timezone: str = "UTC"
    # Output tokens a request is assumed to use for its reservation when it sets no max_tokens.
    limits_default_output_tokens: int = Field(default=1024, ge=1)
    # A parallel-request slot whose process died frees itself after this long; a live request
    # renews its slots every third of it (gateway/accounting/limits/leases.py).
    limits_lease_s: float = Field(default=10.0, ge=0.3, le=3600)

    # Observability (gateway/observability/, docs/observability.md).
    metrics_enabled: bool = True
    # GET /metrics needs `Authorization: Bearer <token>`: this token, or the master key while it is unset.
    metrics_token: SecretStr | None = None
    # Per-key series grow with the number of keys: only when an operator asks for them.
    metrics_key_labels: bool = False
    # One JSON line per request at info (warning for 5xx); the prompt only with log_prompts.
    log_requests: bool = True
    log_prompts: bool = False
    # OpenTelemetry traces over OTLP/HTTP (needs the `otel` extra); endpoint None: the OTEL_* variables.
    otel_enabled: bool = False
    otel_endpoint: str | None = None
    otel_service_name: str = "llm-gateway"

    # Budget alerts (gateway/observability/alerts/): posted once per period per threshold to every webhook.
    # Webhook URLs often carry a token (Slack's do), so they are secrets: never logged.
    alert_webhooks: list[SecretStr] = Field(default_factory=list)
    alert_thresholds_pct: list[Annotated[int, Field(ge=1, le=1000)]] = Field(default_factory=lambda: [50, 80, 100])
    alert_scopes: list[Literal["key", "team"]] = ["key", "team"]  # pydantic copies list defaults
    alert_queue_size: int = Field(default=1000, ge=1)
    alert_max_attempts: int = Field(default=6, ge=1)
    alert_retry_base_s: float = Field(default=1.0, gt=0)
    alert_timeout_s: float = Field(default=10.0, gt=0)
    # Budget forecasts (gateway/accounting/forecast.py): how often they are computed for the gauges and
    # the "projected to run out" alert; 0 turns that off (the admin API still computes them on demand).
    forecast_interval_s: float = Field(default=3600.0, ge=0)

    # The cost ledger (gateway/accounting/ledger/, docs/ledger.md): one row per request, written
    # in batches by a background task; rows spill to files under data_dir while the database is away.
    ledger_enabled: bool = True
    ledger_queue_size: int = Field(default=50_000, ge=1)
    ledger_batch_size: int = Field(default=2_000, ge=1)
    ledger_flush_s: float = Field(default=0.2, gt=0)
    ledger_write_timeout_s: float = Field(default=10.0, gt=0)
    ledger_retry_max_s: float = Field(default=30.0, gt=0)
    # Day partitions made ahead of today, and days kept (0: keep every day).
    ledger_premake_days: int = Field(default=7, ge=1, le=365)
    ledger_retention_days: int = Field(default=90, ge=0)
    ledger_maintain_every_s: float = Field(default=3600.0, gt=0)
    # On shutdown, how long the queue may take to reach the database before it is spilled instead.
    ledger_shutdown_s: float = Field(default=10.0, ge=0)
    # Durable mode (gateway/accounting/ledger/journal.py): each row is appended to a local journal
    # and fsynced (commits grouped) before its answer completes, and a crashed worker's journal is
    # replayed at the next start, so a SIGKILL loses no answered request's row. Off: a SIGKILL
    # loses the rows still in memory (up to about one flush interval's).
    ledger_durable: bool = False

    # Stored responses of the Responses API (gateway/dialects/responses/store.py): kept this long for
    # previous_response_id and retrieval, then swept by `gateway db maintain`.
    responses_retention_days: int = Field(default=30, ge=1)
    # Retention of the other tables `gateway db maintain` sweeps (0: keep for ever): the admin audit
    # log, and the ledger's per-day rollup (kept past the rows' own retention by default).
    audit_retention_days: int = Field(default=0, ge=0)
    ledger_daily_retention_days: int = Field(default=0, ge=0)

    @field_validator("limits_timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Europe/Paris')") from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment overrides them.
        return env_settings, init_settings
