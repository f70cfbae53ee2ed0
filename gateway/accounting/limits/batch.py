"""The admit and settle calls of one event-loop iteration, sent as one script call (`lua/batch_v1.lua`).

At concurrency a worker makes many limiter calls per iteration; each one alone is a command to
encode, a reply to parse and a future to answer, and on the Redis side a script call of its own.
Here the calls made in one iteration wait until the iteration ends and then go out as one
EVALSHA that runs them in the order they were made, each with the code it runs alone. A lone
call (concurrency 1) goes out as itself. Order is kept: a batch is written on the one
connection before any call made after it, so a settle still runs before every admit made after it.

A call whose caller gave up before the batch left is not sent. A batch that fails (Redis away, a
stall, NOSCRIPT handled below it by the channel) fails each of its calls, as calls written
together on one connection fail together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

from gateway.accounting.limits.resp import ReplyError, Script, ScriptChannel

BATCH_SCRIPT = "batch_v1.lua"


class _Call(NamedTuple):
    script: Script
    keys: Sequence[str]
    args: Sequence[str | int]
    future: asyncio.Future[Any]


def batch_script(read: Callable[[str], str], scripts: dict[str, str]) -> Script:
    """batch_v1.lua after the scripts it runs, each as a Lua function of (KEYS, ARGV)."""
    functions = [f"local function {name}(KEYS, ARGV)\n{read(file)}\nend\n" for name, file in scripts.items()]
    return Script("".join(functions) + read(BATCH_SCRIPT))


class Batcher:
    def __init__(self, channel: ScriptChannel, batch: Script, codes: dict[str, str]) -> None:
        self.channel = channel
        self.script = batch
        # A script's SHA -> its code in batch_v1.lua's calls table.
        self.codes = codes
        self._calls: list[_Call] = []
        # Script calls sent, and how many limiter calls they carried (for the benchmarks).
        self.sent = 0
        self.carried = 0

    def run(self, script: Script, keys: Sequence[str], args: Sequence[str | int]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._calls:
            loop.call_soon(self._send)
        self._calls.append(_Call(script, keys, args, future))
        return future

    def _send(self) -> None:
        calls = [c for c in self._calls if not c.future.done()]
        self._calls = []
        if not calls:
            return
        self.sent += 1
        self.carried += len(calls)
        if len(calls) == 1:
            call = calls[0]
            self.channel.submit(call.script, call.keys, call.args).add_done_callback(partial(_answer, calls))
            return
        keys: list[str] = []
        args: list[str | int] = [len(calls)]
        for call in calls:
            keys += call.keys
            args += (self.codes[call.script.sha], len(call.keys), len(call.args), *call.args)
        self.channel.submit(self.script, keys, args).add_done_callback(partial(_spread, calls))


def _answer(calls: list[_Call], reply: asyncio.Future[Any]) -> None:
    _settle_all(calls, reply, lambda result: [result])


def _spread(calls: list[_Call], reply: asyncio.Future[Any]) -> None:
    _settle_all(calls, reply, lambda result: result)


def _settle_all(calls: list[_Call], reply: asyncio.Future[Any], split: Callable[[Any], list[Any]]) -> None:
    if reply.cancelled():
        exc: BaseException | None = ConnectionError("the limits' Redis channel is closed")
    else:
        exc = reply.exception()
    if exc is not None:
        for call in calls:
            if not call.future.done():
                call.future.set_exception(exc)
        return
    replies = split(reply.result())
    if not isinstance(replies, list) or len(replies) != len(calls):
        exc = ConnectionError("the limits' batch came back in another shape")
        replies = [exc] * len(calls)
    for call, answer in zip(calls, replies, strict=True):
        if call.future.done():
            continue
        if isinstance(answer, (ReplyError, ConnectionError)):
            call.future.set_exception(answer)
        else:
            call.future.set_result(answer)
