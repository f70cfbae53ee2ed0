"""The limits in Redis: one EVALSHA of `lua/admit_v1.lua` per request, settled by `settle_v2.lua`;
`renew_v1.lua` extends the parallel-slot leases of every request in flight, one call per interval.

The scripts are versioned files, loaded once at start (SCRIPT LOAD), called by SHA, and loaded
again when Redis answers NOSCRIPT (after a restart or failover). On a single Redis the calls go
through `resp.ScriptChannel`, one pipelined connection per worker; on a cluster through
redis-py's cluster client, which knows the slots. Every call is bounded by a short timeout; any
failure becomes `Unavailable`, the one exception the limiter sees, and the limiter's failure
mode decides what happens next.

On a cluster a call that meets a node gone, a MOVED or a CLUSTERDOWN learns the slot map again
(one refresh shared by every call that failed on the same map) and, unless it is a settle, is
tried once more within its timeout: once a replica has taken over, the first admission after it
is answered, not refused.

On a single Redis every check of a request goes into one script call, atomic over all of them.
On Redis Cluster a script may only touch one slot, so the checks are grouped by hash tag (one
group per scope: key, team, model) and the groups are sent at once, one round trip of wall time
for up to three calls' work; if any group refuses, the groups that reserved are rolled back.
Across slots this is not atomic: between the reserve and the rollback another request may see
the rolled-back reservation and be refused too. That errs toward refusing, never toward
admitting past a limit, and only at the edge of a limit.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterError, MovedError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as NodeGone

from gateway.accounting.limits.checks import Check, Outcome, Unavailable, from_fields, hash_tag
from gateway.accounting.limits.resp import ReplyError, Script, ScriptChannel

log = logging.getLogger("gateway.limits")

ADMIT_SCRIPT = "admit_v1.lua"
SETTLE_SCRIPT = "settle_v2.lua"
RENEW_SCRIPT = "renew_v1.lua"


# After a master fails, redis-py learns the new slot map by a refresh that it runs at most once
# a second by default: up to a second more of the failure mode after the replica has taken over.
# A quarter of a second still keeps refreshes (a CLUSTER SLOTS per worker) from piling up.
CLUSTER_REFRESH_S = 0.25
# redis-py releases before this pacing refresh on every error, which needs no setting.
_PACED_REFRESH = "topology_refresh_min_interval" in inspect.signature(RedisCluster.__init__).parameters
# On a cluster, while calls fail, the limiter asks again this soon (at most; see build_limiter):
# a master's replica takes over by itself within the failover time, and a recheck then costs a
# refused connect and one CLUSTER SLOTS, so the failure mode outlasts the takeover by this much.
CLUSTER_RECHECK_S = 0.1
# What a stale slot map looks like: the node is gone (its connection refused or reset), or it
# answers MOVED or CLUSTERDOWN, or the client found no node for the slot.
_STALE_MAP: tuple[type[Exception], ...] = (NodeGone, MovedError, ClusterError, RedisClusterException)


# Connections closed for a stall, with no reply in between, before Redis counts as down.
STALLS_FOR_DOWN = 2


def script_text(name: str) -> str:
    return resources.files("gateway.accounting.limits").joinpath("lua", name).read_text()


def connect(url: str, *, cluster: bool, timeout_s: float) -> Redis | RedisCluster:
    """A client that gives up fast: socket timeouts, and one immediate retry for a stale connection."""
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 1),
    }
    if cluster:
        if _PACED_REFRESH:
            options["topology_refresh_min_interval"] = CLUSTER_REFRESH_S
        return RedisCluster.from_url(url, **options)
    return Redis.from_url(url, **options)


class RedisBackend:
    def __init__(self, url: str, *, timeout_s: float, cluster: bool = False) -> None:
        # redis-py for loading scripts, reads, and every call on a cluster.
        self.client = connect(url, cluster=cluster, timeout_s=timeout_s)
        self.timeout_s = timeout_s
        self.cluster = cluster
        self._admit = Script(script_text(ADMIT_SCRIPT))
        self._settle = Script(script_text(SETTLE_SCRIPT))
        self._renew = Script(script_text(RENEW_SCRIPT))
        self._channel = None if cluster else ScriptChannel(url, timeout_s=timeout_s)
        scripts = (self._admit, self._settle, self._renew) if cluster else ()
        self._on_cluster = {s.sha: self.client.register_script(s.text) for s in scripts}
        # Slot maps learnt since start, and the refresh in flight that calls which failed wait on.
        self._maps = 0
        self._refreshing: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Learn the cluster's slots and load the scripts ahead of the first request.

        A cluster client that meets its first burst of requests uninitialised lets each of them
        discover the topology at once, and redis-py then closes connections that others are using.
        """
        if isinstance(self.client, RedisCluster):
            await self._bounded(self.client.initialize())
        await self._bounded(self.client.script_load(self._admit.text))
        await self._bounded(self.client.script_load(self._settle.text))
        await self._bounded(self.client.script_load(self._renew.text))
        if self._channel is not None:
            await self._mapped(self._channel.connect())

    async def admit(self, checks: Sequence[Check], now_ms: int, member: str, lease_ms: int) -> list[Outcome]:
        groups = self._groups(checks)
        if len(groups) == 1:
            return await self._admit_group(checks, now_ms, member, lease_ms)
        answers = await asyncio.gather(
            *(self._admit_group(group, now_ms, member, lease_ms) for group in groups), return_exceptions=True
        )
        outcomes: dict[int, Outcome] = {}
        reserved: list[Sequence[Check]] = []
        failure: BaseException | None = None
        for group, answer in zip(groups, answers, strict=True):
            if isinstance(answer, BaseException):
                failure = answer
                continue
            outcomes.update((id(c), o) for c, o in zip(group, answer, strict=True))
            if all(o.ok for o in answer):
                reserved.append(group)
        if failure is not None or len(reserved) < len(groups):
            await self._roll_back(reserved, now_ms, member)
        if failure is not None:
            raise failure
        return [outcomes[id(c)] for c in checks]

    async def _roll_back(self, groups: Sequence[Sequence[Check]], now_ms: int, member: str) -> None:
        for group in groups:
            try:
                await self.adjust(group, [-c.amount for c in group], now_ms, member)
            except Unavailable:
                # What stays reserved errs toward refusing; parallel slots free at their lease.
                pass

    async def _admit_group(self, checks: Sequence[Check], now_ms: int, member: str, lease_ms: int) -> list[Outcome]:
        # StrEnum: the kind formats as its value.
        spec = " ".join([f"{kind} {limit} {amount} {ttl}" for kind, _, limit, amount, ttl in checks])
        reply = await self._run(self._admit, [c.key for c in checks], [now_ms, member, lease_ms, spec])
        n = [int(word) for word in reply.split()]
        return [from_fields(Outcome, (n[i] == 1, n[i + 1], n[i + 2], n[i + 3])) for i in range(0, len(n), 4)]

    async def adjust(self, checks: Sequence[Check], deltas: Sequence[int], now_ms: int, member: str) -> list[int]:
        if not self.cluster:  # one call for every check
            spec = " ".join([f"{c.kind} {c.limit} {d} {c.ttl_ms}" for c, d in zip(checks, deltas, strict=True)])
            reply = await self._run(self._settle, [c.key for c in checks], [now_ms, member, spec])
            return [int(word) for _, word in zip(checks, reply.split(), strict=True)]
        delta_of = {id(c): d for c, d in zip(checks, deltas, strict=True)}
        groups = self._groups(checks)
        calls = []
        for group in groups:
            spec = " ".join([f"{c.kind} {c.limit} {delta_of[id(c)]} {c.ttl_ms}" for c in group])
            calls.append(self._run(self._settle, [c.key for c in group], [now_ms, member, spec]))
        replies = [await calls[0]] if len(calls) == 1 else await asyncio.gather(*calls)
        spent: dict[int, int] = {}
        for group, reply in zip(groups, replies, strict=True):
            spent.update((id(c), int(word)) for c, word in zip(group, reply.split(), strict=True))
        return [spent[id(c)] for c in checks]

    async def renew(self, slots: Sequence[tuple[str, str]], now_ms: int, lease_ms: int) -> list[str]:
        if not slots:
            return []
        held: dict[str, list[str]] = {}
        for key, member in slots:
            held.setdefault(key, []).append(member)
        # One call on a single Redis; on a cluster one per hash tag (a script touches one slot), sent at once.
        groups: dict[str, list[str]] = {}
        for key in held:
            groups.setdefault(hash_tag(key) if self.cluster else "", []).append(key)
        calls = [self._run(self._renew, keys, [now_ms, lease_ms, *(" ".join(held[k]) for k in keys)])
                 for keys in groups.values()]  # fmt: skip
        replies = [await calls[0]] if len(calls) == 1 else await asyncio.gather(*calls)
        return [member.decode() for reply in replies for member in reply.split()]

    def _run(self, script: Script, keys: list[str], args: list[Any]) -> Awaitable[Any]:
        if self._channel is not None:
            return self._mapped(self._channel.run(script, keys, args))  # the channel keeps its own time
        return self._bounded(self._on_cluster_call(script, keys, args))

    async def _on_cluster_call(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        call = self._on_cluster[script.sha]
        seen = self._maps
        try:
            return await call(keys=keys, args=args)
        except _STALE_MAP:
            if self._maps == seen:  # nobody learnt the slots since this call was sent
                await self._learn_slots()
            if script is self._settle:
                # A connection lost mid-reply may have run it: a settle run twice would charge
                # twice, and one not run leaves its reservation standing, which errs toward
                # refusing. An admit or renew run twice errs the same way.
                raise
        return await call(keys=keys, args=args)

    async def _learn_slots(self) -> None:
        """One CLUSTER SLOTS for every call that failed meanwhile; the first failure starts it."""
        if self._refreshing is None:
            self._refreshing = refresh = asyncio.ensure_future(self._refresh_slots())
            # Its failure reaches whoever waits; if all of them ran out of time, nobody need hear it.
            refresh.add_done_callback(lambda done: done.cancelled() or done.exception())
        # Shielded: a caller that runs out of time must not cancel the others' refresh.
        await asyncio.shield(self._refreshing)

    async def _refresh_slots(self) -> None:
        assert isinstance(self.client, RedisCluster)
        try:
            # Not the client's initialize(): that one is paced, and returns at once (on the old
            # map) while another task refreshes; this waits for the new map.
            await self.client.nodes_manager.initialize()
            self._maps += 1
        finally:
            self._refreshing = None

    async def read(self, key: str, now_ms: int) -> int:
        value = await self._bounded(self.client.get(key))
        return int(value) if value is not None else 0

    def _groups(self, checks: Sequence[Check]) -> list[Sequence[Check]]:
        if not self.cluster:
            return [checks]
        groups: dict[str, list[Check]] = {}
        for check in checks:
            groups.setdefault(check.tag, []).append(check)
        return list(groups.values())

    async def _bounded(self, call: Awaitable[Any]) -> Any:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._mapped(call)
        except TimeoutError:
            # Raised by the deadline itself, outside _mapped: it too must reach the limiter as
            # Unavailable (its failure mode), never as a 500 or a failed start.
            raise Unavailable("TimeoutError") from None

    async def _mapped(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except TimeoutError:
            # On a single Redis, one stall of a connection that was answering is not an outage.
            down = self._channel is None or self._channel.stalls_in_row >= STALLS_FOR_DOWN
            raise Unavailable("TimeoutError", down=down) from None
        except (RedisError, RedisClusterException, ReplyError, OSError) as exc:
            # RedisClusterException is not a RedisError: a cluster with no node reachable, or a
            # slot no node serves, mid-failover. An outage, not a bug worth a trace.
            raise Unavailable(type(exc).__name__) from None
        except Exception as exc:
            # A fault inside the client library must not become a 500 either; it is a bug worth a trace.
            log.exception("limits: unexpected error from the Redis client")
            raise Unavailable(type(exc).__name__) from None

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        await self.client.aclose()
