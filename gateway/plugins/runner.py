"""Running the configured plugins: which apply to a request, each hook in order, failures contained.

`Plugins` is built once by the app factory. `start(principal)` is the only call every request
makes: two dict lookups, and None when no plugin applies, so the proxy skips every hook point.
A request's chain is the global entries, then its team's, then its key's; chains are built once
per configured team and key, so the lookup allocates nothing but the per-request `PluginRun`.

A hook that raises a `GatewayError` refuses the request on purpose. Anything else is a failure:
logged (the plugin, the hook and the exception's type, never its message, which may quote the
request) and counted, then either the request fails with a 500 `plugin_error` (`on_failure:
error`, the default) or the plugin is skipped for this request (`skip`). After the answer is
sent, failures can only be logged and counted.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import Any, cast

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp

from gateway.config.file import ConfigError
from gateway.config.plugins import PluginEntry, PluginsSection
from gateway.core.errors import GatewayError
from gateway.core.types import GuardrailDecision, Principal, RequestOutcome, StreamTranslator
from gateway.edge.responses import JSONReply
from gateway.pipeline.context import RequestContext
from gateway.pipeline.hooks import PluginFindings, PluginsBefore
from gateway.plugins.base import Answer, Before, ChunkHook, Plugin, PluginFailed, Services, overrides
from gateway.plugins.cache.embed import SelfEmbedder
from gateway.plugins.replay_call import ReplayCall
from gateway.plugins.responses_stream import ResponsesEvents, ResponsesFilteredStream
from gateway.plugins.stream import Assembler, FilteredStream, replay

log = logging.getLogger("gateway.plugins")

GUARDRAILS_TAG = "gateway.guardrails"
SAVED_TAG = "gateway.saved_usd"


@dataclass(frozen=True, slots=True)
class Bound:
    plugin: Plugin
    id: str
    fail_request: bool


class Chain:
    """One team's and key's plugins in order, with the entries that override each hook."""

    __slots__ = ("afters", "befores", "chunkers", "entries", "errors")

    def __init__(self, entries: tuple[Bound, ...]) -> None:
        self.entries = entries
        self.befores = tuple(b for b in entries if overrides(b.plugin, "before"))
        self.chunkers = tuple((i, b) for i, b in enumerate(entries) if overrides(b.plugin, "on_chunk"))
        self.afters = tuple(b for b in entries if overrides(b.plugin, "after"))
        self.errors = tuple(b for b in entries if overrides(b.plugin, "on_error"))


class Plugins:
    def __init__(self, section: PluginsSection, classes: dict[str, type[Plugin]], services: Services) -> None:
        self.services = services
        default = section.on_failure

        def build(entries: list[PluginEntry], where: str) -> tuple[Bound, ...]:
            return tuple(_build(entry, f"{where}[{i}]", classes, services, default) for i, entry in enumerate(entries))

        self._global = build(section.global_, "plugins.global")
        self._teams = {team: build(e, f"plugins.teams.{team}") for team, e in section.teams.items()}
        self._keys = {key: build(e, f"plugins.keys.{key}") for key, e in section.keys.items()}
        self._global_chain = Chain(self._global) if self._global else None
        self._scoped = bool(self._teams or self._keys)
        self._chains: dict[tuple[str | None, str | None], Chain] = {}
        scoped = [bound for entries in (*self._teams.values(), *self._keys.values()) for bound in entries]
        self.all = [bound.plugin for bound in (*self._global, *scoped)]

    def chain(self, principal: Principal | None) -> Chain | None:
        if not self._scoped or principal is None:
            return self._global_chain
        team = principal.team_id if principal.team_id in self._teams else None
        key = principal.key_id if principal.key_id in self._keys else None
        if team is None and key is None:
            return self._global_chain
        chain = self._chains.get((team, key))
        if chain is None:
            entries = self._global + self._teams.get(team or "", ()) + self._keys.get(key or "", ())
            chain = self._chains[(team, key)] = Chain(entries)
        return chain

    def start(self, principal: Principal | None) -> PluginRun | None:
        chain = self.chain(principal)
        return PluginRun(self, chain) if chain is not None else None

    async def open(self) -> None:
        for plugin in self.all:
            await plugin.start()

    def bind(self, app: ASGIApp) -> None:
        """The app exists: plugins may now call it (the semantic cache's embeddings)."""
        if isinstance(self.services.embed, SelfEmbedder):
            self.services.embed.bind(app)

    async def close(self) -> None:
        for plugin in self.all:
            try:
                await plugin.close()
            except Exception as exc:
                log.warning("plugin %s failed to close: %s", plugin.id, type(exc).__name__)
        if isinstance(self.services.embed, SelfEmbedder):
            await self.services.embed.close()
        if self.services.redis is not None:
            await self.services.redis.aclose()

    def failed(self, bound: Bound, hook: str, exc: Exception) -> PluginFailed | None:
        """Log and count a failure; the error to fail the request with, or None to skip the plugin."""
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f"{frame.filename}:{frame.lineno}" if frame else "?"
        action = "failing the request" if bound.fail_request else "skipped"
        log.error("plugin %s failed in %s (%s at %s); %s", bound.id, hook, type(exc).__name__, where, action)
        if self.services.metrics is not None:
            self.services.metrics.plugin_failed(bound.id, hook)
        if bound.fail_request:
            return PluginFailed(f"The gateway's plugin '{bound.id}' failed while processing your request.")
        return None


class PluginRun:
    """One request's pass through its chain."""

    __slots__ = ("chain", "decisions", "plugins", "state", "stream")

    def __init__(self, plugins: Plugins, chain: Chain) -> None:
        self.plugins = plugins
        self.chain = chain
        self.stream: FilteredStream | ResponsesFilteredStream | None = None
        # What a plugin keeps between its hooks for this request, under its id.
        self.state: dict[str, Any] = {}
        # Every decision the request's plugins returned or stated, in order.
        self.decisions: list[GuardrailDecision] = []

    def decided(self, decision: GuardrailDecision) -> None:
        self.decisions.append(decision)

    async def before(self, ctx: RequestContext) -> PluginsBefore:
        """The `before` hooks in order; what they gave back, for the proxy to place. A hook that
        returns a new body hands it to the next one (through `ctx.body`, which hooks read: a new
        request value, `ctx.request`)."""
        headers: dict[str, str] = {}
        for bound in self.chain.befores:
            try:
                given = await bound.plugin.before(ctx)
            except GatewayError:
                raise
            except Exception as exc:
                error = self.plugins.failed(bound, "before", exc)
                if error is not None:
                    raise error from None
                continue
            if given is None:
                continue
            if isinstance(given, Answer):  # the older form: an answer, the body changed in place
                given = Before(answer=given)
            self.decisions.extend(given.decisions)
            headers.update(given.headers)
            if given.body is not None:
                assert ctx.request is not None, "plugins run once the request is read"
                ctx.request = ctx.request.with_body(given.body)
            if given.redacted is not None:
                ctx.redacted_body = given.redacted
            if given.answer is not None:
                return PluginsBefore(self._respond(ctx, given.answer, headers), ctx.body, tuple(self.decisions),
                                     ctx.redacted_body, headers, given.cache_hit, given.saved_usd)
        return PluginsBefore(None, ctx.body, tuple(self.decisions), ctx.redacted_body, headers)

    async def after(self, ctx: RequestContext, body: bytes) -> bytes:
        """A unary answer before it is sent: what the `after` hooks make of it."""
        if not self.chain.afters:
            return body
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if not isinstance(parsed, dict):
            return body
        answer = Answer(parsed)
        for bound in self.chain.afters:
            try:
                await bound.plugin.after(ctx, answer)
            except GatewayError:
                raise
            except Exception as exc:
                error = self.plugins.failed(bound, "after", exc)
                if error is not None:
                    raise error from None
        return orjson.dumps(answer.body) if answer.changed else body

    def wrap(self, ctx: RequestContext, translator: StreamTranslator) -> StreamTranslator:
        """The stream's translator, behind the chunk hooks; the same one when nothing looks at chunks."""
        hooks: list[tuple[int, ChunkHook]] = []
        for position, bound in self.chain.chunkers:
            try:
                hook = bound.plugin.on_chunk(ctx)
            except Exception as exc:
                error = self.plugins.failed(bound, "on_chunk", exc)
                if error is not None:
                    raise error from None
                continue
            if hook is not None:
                hooks.append((position, hook))
        if not hooks and not self.chain.afters:
            return translator
        if getattr(translator, "events", None) == "responses":
            # A native Responses relay: the upstream's own events, not chat chunks.
            native = cast("ResponsesEvents", translator)
            self.stream = ResponsesFilteredStream(native, hooks, bool(self.chain.afters), self._chunk_failed)
            return self.stream
        assembler = Assembler(ctx.endpoint) if self.chain.afters else None
        self.stream = FilteredStream(translator, ctx.endpoint, hooks, assembler, self._chunk_failed)
        return self.stream

    def _chunk_failed(self, position: int, hook: str, exc: Exception) -> None:
        error = self.plugins.failed(self.chain.entries[position], hook, exc)
        if error is not None:
            raise error  # in the relay: the stream ends with an in-band error event

    async def finish(self, ctx: RequestContext, outcome: RequestOutcome) -> PluginFindings:
        """Every request, once, before it is settled and recorded: a streamed answer's `after`, or
        `on_error`, as `outcome` says it ended (the hooks read it as `ctx.outcome`, placed by the
        proxy); what the plugins found, for the proxy to record."""
        failed = outcome.status >= 400 or outcome.error_type is not None or outcome.cancelled
        if failed:
            for bound in self.chain.errors:
                try:
                    await bound.plugin.on_error(ctx)
                except Exception as exc:
                    self.plugins.failed(bound, "on_error", exc)
        elif self.stream is not None and self.stream.assembler is not None and self.stream.done:
            answer = Answer(self.stream.assembler.body(outcome.usage), streamed=True)
            for bound in self.chain.afters:
                try:
                    await bound.plugin.after(ctx, answer)
                except Exception as exc:
                    self.plugins.failed(bound, "after", exc)
        return self._findings(ctx)

    def _findings(self, ctx: RequestContext) -> PluginFindings:
        """Decisions counted in metrics, and the ledger row's tags (kinds and counts, never text)."""
        tags: dict[str, str] = {}
        if ctx.saved_usd is not None:
            tags[SAVED_TAG] = str(ctx.saved_usd)
        # A hook that still appends to `ctx.guardrails` itself (the older form) is counted too.
        decisions = (*ctx.guardrails, *self.decisions)
        if not decisions:
            return PluginFindings((), tags)
        tags[GUARDRAILS_TAG] = ";".join(
            f"{d.plugin}:{d.where}:{d.kind}:{d.action}:{d.count}" + (f":{d.score}" if d.score is not None else "")
            for d in decisions
        )
        metrics = self.plugins.services.metrics
        if metrics is not None:
            for d in decisions:
                metrics.guardrail_decision(d.plugin, d.kind.partition(":")[0], d.action, d.where)
        return PluginFindings(decisions, tags)

    def _respond(self, ctx: RequestContext, answer: Answer, found: dict[str, str]) -> JSONReply | ReplayCall:
        headers = {**ctx.response_headers, **found, **answer.headers}
        if ctx.stream:
            return ReplayCall(replay(answer.body, ctx.endpoint, ctx.client_wants_usage), headers)
        return JSONReply(orjson.dumps(answer.body), 200, headers)


def _build(
    entry: PluginEntry, where: str, classes: dict[str, type[Plugin]], services: Services, default: str
) -> Bound:
    cls = classes.get(entry.name)
    if cls is None:
        known = ", ".join(sorted(classes))
        raise ConfigError(f"config error: {where}.name: unknown plugin {entry.name!r} (known: {known})")
    try:
        plugin = cls(entry.config, services)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        raise ConfigError(f"config error: {where}.config.{field}: {message}") from None
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"config error: {where}: plugin {entry.name!r} could not be built ({exc})") from None
    plugin.id = entry.id or entry.name
    return Bound(plugin, plugin.id, (entry.on_failure or default) == "error")
