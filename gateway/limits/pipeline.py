"""Script calls made in the same event-loop iteration go to Redis together: one write, one read.

Under load many requests reach admission or settle in one iteration, and a round trip each
costs the gateway far more CPU (client bookkeeping, syscalls) than Redis spends running the
scripts. The first call of an iteration goes out at once as a plain EVALSHA, so a lone request
waits for nothing; the calls that follow it in the same iteration are sent as one pipeline at
the start of the next. NOSCRIPT in a pipeline is answered by the script's own reload-and-retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

Call = tuple[AsyncScript, Sequence[str], Sequence[Any], "asyncio.Future[Any]"]


class AutoPipeline:
    def __init__(self, client: Redis, *, direct_first: bool = True) -> None:
        self.client = client
        # False sends even the first call of an iteration in the pipeline (tests use it).
        self.direct_first = direct_first
        self._queue: list[Call] = []
        self._open = False
        self._sending: set[asyncio.Task[None]] = set()

    async def call(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if not self._open:
            self._open = True
            asyncio.get_running_loop().call_soon(self._flush)
            if self.direct_first:
                return await script(keys=keys, args=args)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, future))
        return await future

    def _flush(self) -> None:
        self._open = False
        if not self._queue:
            return
        batch, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[Call]) -> None:
        try:
            if len(batch) == 1:
                script, keys, args, future = batch[0]
                results: list[Any] = [await script(keys=keys, args=args)]
            else:
                pipe = self.client.pipeline(transaction=False)
                for script, keys, args, _ in batch:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        reloaded: set[str] = set()
        for (script, keys, args, future), result in zip(batch, results, strict=True):
            if isinstance(result, NoScriptError):
                # Redis lost its scripts (restart, failover, SCRIPT FLUSH): load once, run this one again.
                try:
                    if script.sha not in reloaded:
                        await self.client.script_load(script.script)
                        reloaded.add(script.sha)
                    result = await self.client.evalsha(script.sha, len(keys), *keys, *args)
                except Exception as exc:
                    result = exc
            if future.done():
                continue  # its caller gave up (timed out or cancelled)
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def close(self) -> None:
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
