"""A sample llm-gateway plugin: one of each hook, through the public interface only."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from gateway.pipeline.context import RequestContext
from gateway.plugins.base import Answer, Before, ChunkHook, Plugin, PluginConfig, Services
from gateway.plugins.text import rewrite_answer

__all__ = ["StampPlugin"]


class StampConfig(PluginConfig):
    value: str = "stamped"
    shout: bool = False
    # For trying the gateway's failure policy: this hook raises.
    fail_in: Literal["before", "on_chunk", "after"] | None = None


class SampleFailure(RuntimeError):
    pass


class Shout:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def feed(self, index: int, text: str) -> str:
        if self.fail:
            raise SampleFailure("asked to fail in on_chunk")
        return text.upper()

    def flush(self, index: int) -> str:
        return ""


class StampPlugin(Plugin):
    Config = StampConfig
    config: StampConfig

    def __init__(self, config: dict[str, Any], services: Services) -> None:
        super().__init__(config, services)
        # Failed requests by how they ended (an error type, or the status of one without).
        self.failures: Counter[str] = Counter()

    async def before(self, ctx: RequestContext) -> Before | None:
        if self.config.fail_in == "before":
            raise SampleFailure("asked to fail in before")
        return Before(headers={"x-sample-stamp": self.config.value})

    def on_chunk(self, ctx: RequestContext) -> ChunkHook | None:
        if self.config.shout or self.config.fail_in == "on_chunk":
            return Shout(self.config.fail_in == "on_chunk")
        return None

    async def after(self, ctx: RequestContext, answer: Answer) -> None:
        if self.config.fail_in == "after":
            raise SampleFailure("asked to fail in after")
        if self.config.shout and not answer.streamed:
            rewrite_answer(answer.body, str.upper)
            answer.changed = True

    async def on_error(self, ctx: RequestContext) -> None:
        # How the request ended, placed on the context once it finished (status, error type,
        # cancelled, usage, cost); never None in `on_error`.
        outcome = ctx.outcome
        if outcome is not None:
            self.failures[outcome.error_type or str(outcome.status)] += 1
