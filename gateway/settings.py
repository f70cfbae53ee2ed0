"""Process settings: everything that is not about models.

Read from environment variables prefixed `GATEWAY_`; the config file's `settings:` section
may set them too, and the environment wins over the file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
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

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Past this many requests in flight in one worker the gateway answers 503 at once.
    max_inflight: int = Field(default=1024, ge=1)
    overload_retry_after_s: float = Field(default=1.0, gt=0)
    drain_seconds: float = Field(default=30.0, ge=0)

    upstream_connect_timeout_s: float = Field(default=5.0, gt=0)
    upstream_timeout_s: float = Field(default=600.0, gt=0)
    upstream_max_connections: int = Field(default=1000, ge=1)

    log_level: Literal["debug", "info", "warning", "error"] = "info"

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
