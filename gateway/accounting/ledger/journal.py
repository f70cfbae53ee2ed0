"""The durable mode's journal: every row on local disk, fsynced, before its answer completes.

Without it, a row waits in the worker's memory until the writer's next batch, and a SIGKILL
(or the OOM killer) loses that queue: up to one flush interval of answered requests. With it
(`ledger_durable`), `record` also appends the row to a journal file, and the request path awaits
`committed()` before the answer's last byte. Commits are grouped: one fsync covers every row
appended since the last one began, so the cost per request falls as the load rises.

    <journal dir>/<created_ns>-<pid>.active    the segment this worker appends to
    <journal dir>/<created_ns>-<pid>.ndjson    an older segment of a live worker, deleted once
                                               every row in it has reached the database or the spill

A dead worker's segments (a crash) are handed to the spill as sealed files, at start-up and by
the writer's periodic scan, and replayed like any spill file: rows already in the database are
skipped there (the replay is idempotent), the others are written. The journal is the same format
as the spill (one JSON row per line), written with the same class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from gateway.accounting.ledger.row import LedgerRow
from gateway.accounting.ledger.spill import ACTIVE, SEALED, Spill, _alive

log = logging.getLogger("gateway.ledger")

# A segment past this size is closed and a new one begun, so that finished ones can be deleted.
SEGMENT_BYTES = 8 * 1024 * 1024


class Journal:
    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._file = Spill(directory)
        # Closed segments of this worker, each with the count of queued rows it holds up to.
        self._closed: list[tuple[Path, int]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Rows appended; the number of the last one known to be safe elsewhere (database or spill)
        # with every row before it.
        self.appended = 0
        self.handled = 0
        self.commits = 0

    def append(self, row: LedgerRow) -> int:
        """One write(2): the row is in the OS (it survives a SIGKILL) when this returns. Returns
        the row's number in the journal."""
        self._file.append((row,))
        self.appended += 1
        return self.appended

    async def committed(self) -> None:
        """Wait until every row appended so far is fsynced (survives a power cut too)."""
        if self._task is None:
            return  # not started, or stopped: nothing to wait for
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wanted.set()
        await waiter

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._commit_loop(), name="ledger-journal")

    async def stop(self) -> None:
        """The writer has put every row in the database or the spill: the journal is not needed."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._release_waiters()
        self._file.seal()
        for path, _ in self._closed:
            path.unlink(missing_ok=True)
        self._closed.clear()
        for path in self.directory.glob(f"*-{os.getpid()}{SEALED}"):
            path.unlink(missing_ok=True)

    def mark_handled(self, number: int) -> None:
        """The writer wrote, spilled or set aside every queued row up to the one numbered `number`
        (rows that skipped the queue went to the spill at once)."""
        self.handled = max(self.handled, number)

    def hand_over_orphans(self, spill_dir: Path) -> int:
        """Move dead workers' segments into the spill directory, sealed, to be replayed there."""
        moved = 0
        with contextlib.suppress(FileNotFoundError):
            for path in sorted(self.directory.iterdir()):
                if not path.name.endswith((ACTIVE, SEALED)) or not self._orphaned(path):
                    continue
                spill_dir.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    os.rename(path, spill_dir / (path.name.split(".", 1)[0] + SEALED))
                    moved += 1
        if moved:
            log.warning("ledger: %d journal segment(s) of a worker that died handed to the spill for replay", moved)
        return moved

    async def _commit_loop(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            waiters, self._waiters = self._waiters, []
            try:
                # Rows appended while this fsync runs wait for the next one: that is the grouping.
                await asyncio.to_thread(self._file.sync)
            except OSError as exc:
                log.error("ledger: could not fsync the journal (%s); answers go on without it", exc)
            self.commits += 1
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._rotate()

    def _rotate(self) -> None:
        if self._file.size >= self.segment_bytes:
            active = self._file._active
            self._file.seal()  # fsynced already: renames the segment to .ndjson
            if active is not None:
                self._closed.append((active.with_suffix(SEALED), self.appended))
        while self._closed and self._closed[0][1] <= self.handled:
            path, _ = self._closed.pop(0)
            path.unlink(missing_ok=True)

    def _release_waiters(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def _orphaned(self, path: Path) -> bool:
        if path == self._file._active or any(path == closed for closed, _ in self._closed):
            return False
        try:
            pid = int(path.name.split("-", 1)[1].split(".", 1)[0])
        except (IndexError, ValueError):
            return False
        return pid == os.getpid() or not _alive(pid)
