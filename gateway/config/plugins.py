"""The config file's `plugins:` section: which plugins run for whom, in which order.

    plugins:
      on_failure: error            # a plugin that raises: the request fails (500) | skip it
      global:                      # every request, first
        - {name: request_limits, config: {max_tokens: 4096}}
      teams:                       # then the caller's team's, by team id
        team_3kP...: [{name: pii, config: {mode: mask}}, {name: cache}]
      keys:                        # then the caller's key's, by key id
        key_9xQ...: [{name: injection, config: {action: refuse}}]

Each entry's own `config:` is checked by its plugin when the gateway starts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

OnFailure = Literal["error", "skip"]


class PluginEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A built-in's name or an installed plugin's entry-point name (group `llm_gateway.plugins`).
    name: str = Field(min_length=1)
    # How metrics, logs and the ledger name this entry; defaults to `name`.
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")
    config: dict[str, Any] = Field(default_factory=dict)
    # None: the section's `on_failure`.
    on_failure: OnFailure | None = None


class PluginsSection(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    on_failure: OnFailure = "error"
    global_: list[PluginEntry] = Field(default_factory=list, alias="global")
    teams: dict[str, list[PluginEntry]] = Field(default_factory=dict)
    keys: dict[str, list[PluginEntry]] = Field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.global_ or self.teams or self.keys)
