"""The ledger: a `Recorder` whose only request-path work is building a row and queueing it.

One background task per process drains the queue in batches (by count, or after `flush_s`)
into the sink. Nothing is dropped on the way:

- queue full (the database is slow)   -> the row goes to the spill file at once;
- the sink fails or times out         -> the batch goes to the spill file, retries back off;
- spill files exist                   -> new batches are appended behind them, and the files are
                                         replayed oldest first once the sink answers again, so
                                         rows reach the database in the order they were spilled;
- shutdown                            -> the queue is written, or spilled and fsynced, before exit;
- a row recorded after shutdown       -> straight to the spill file (a request cancelled late).

Rows a database refuses for good (SinkRejected) are found by splitting the batch until only they
are left; they alone are set aside in a `.rejected` file, logged and counted, never silently lost,
and their neighbours are written as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from gateway.accounting.ledger.journal import Journal
from gateway.accounting.ledger.row import LedgerRow
from gateway.accounting.ledger.sink import Sink, SinkRejected, SinkUnavailable
from gateway.accounting.ledger.spill import Spill
from gateway.pipeline.record import RequestRecord

log = logging.getLogger("gateway.ledger")


@dataclass(frozen=True, slots=True)
class LedgerOptions:
    queue_size: int = 50_000
    batch_size: int = 2_000
    flush_s: float = 0.2
    write_timeout_s: float = 10.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    maintain_every_s: float = 3600.0
    shutdown_s: float = 10.0
    # How often to look for spill files other processes left (this process's own are known).
    spill_scan_s: float = 5.0
    spill_segment_bytes: int = 64 * 1024 * 1024


@dataclass(slots=True)
class LedgerStats:
    recorded: int = 0
    written: int = 0
    spilled: int = 0
    replayed: int = 0
    # Replayed rows the database already held: the write before the spill had committed.
    duplicates: int = 0
    rejected: int = 0
    # Counted warnings: tokens were used but no price is known, so the cost is NULL.
    unpriced: int = 0
    write_failures: int = 0
    # Rows neither written nor spilled (the spill file itself failed, e.g. a full disk).
    lost: int = 0


def utc_today() -> date:
    return datetime.now(UTC).date()


class Ledger:
    def __init__(
        self,
        sink: Sink,
        spill: Spill,
        options: LedgerOptions,
        today: Callable[[], date] = utc_today,
        journal: Journal | None = None,
    ) -> None:
        self.sink = sink
        self.spill = spill
        # The durable mode (journal.py): each row is also on local disk before its answer completes.
        self.journal = journal
        # In durable mode, each queued row's number in the journal, in queue order.
        self._numbers: deque[int] = deque()
        self.options = options
        self.stats = LedgerStats()
        self._today = today
        self._queue: deque[LedgerRow] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._healthy = False
        self._retry_at = 0.0
        self._backoff = 0.0
        self._next_maintain = 0.0
        self._next_scan = 0.0
        # This process has spilled rows not yet replayed: new batches must queue behind them.
        self._pending = False
        self._warned_unpriced: set[tuple[str | None, str | None]] = set()

    # the request path

    def record(self, record: RequestRecord) -> None:
        try:
            row = LedgerRow.from_record(record)
        except Exception:
            log.exception("ledger: could not build the row of request %s", record.request_id)
            return
        self.stats.recorded += 1
        if row.cost_usd is None:
            self._warn_unpriced(row)
        if self._closed:
            self._spill_now([row], sync=True)
        elif len(self._queue) >= self.options.queue_size:
            self._spill_now([row])
        else:
            if self.journal is not None and not self._journal(row):
                return
            self._queue.append(row)
            if len(self._queue) >= self.options.batch_size:
                self._wake.set()

    def _journal(self, row: LedgerRow) -> bool:
        """Append a row to the journal; False if it went to the spill instead (the journal failed)."""
        assert self.journal is not None
        try:
            self._numbers.append(self.journal.append(row))
        except OSError:
            log.exception("ledger: could not append to the journal; the row goes to the spill")
            self._spill_now([row])
            return False
        return True

    async def committed(self) -> None:
        """In durable mode, wait until every row recorded so far is fsynced; else return at once."""
        if self.journal is not None:
            await self.journal.committed()

    # lifecycle

    async def start(self) -> None:
        if self._task is None:
            if self.journal is not None:
                # What a worker that died had journaled is replayed from the spill like any spilled row.
                self._pending = await asyncio.to_thread(self.journal.hand_over_orphans, self.spill.directory) > 0
                self.journal.start()
            self._task = asyncio.create_task(self._run(), name="ledger-writer")

    async def stop(self) -> None:
        """Write what is queued (within shutdown_s), spill the rest, and fsync."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(self.options.shutdown_s):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                log.warning("ledger: shutdown took over %.1fs; spilling the rest", self.options.shutdown_s)
        if self._queue:
            self._spill_now(self._take(len(self._queue)))
        self._closed = True
        self.spill.seal()
        if self.journal is not None:
            await self.journal.stop()  # every row is in the database or the spill now
        await self.sink.close()

    def status(self) -> dict[str, Any]:
        return {
            "sink": self.sink.name,
            "healthy": self._healthy,
            "queued": len(self._queue),
            "spill_pending": self._pending,
            **asdict(self.stats),
        }

    # the writer task

    async def _run(self) -> None:
        while not self._closing:
            if len(self._queue) < self.options.batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.options.flush_s):
                        await self._wake.wait()
            if self._closing:
                break
            try:
                await self._cycle()
            except Exception as exc:  # a bug must not stop the writer: the rows it held were spilled
                log.exception("ledger: the writer failed; carrying on")
                self._failed(exc)
        # Shutdown: one more chance for the database, no replays (they can wait for the next start).
        if not self._healthy and time.monotonic() >= self._retry_at:
            await self._connect()
        while self._queue:
            await self._put(self._take(self.options.batch_size))
        await self._sync_spill()

    async def _cycle(self) -> None:
        now = time.monotonic()
        if now >= self._next_scan:
            self._next_scan = now + self.options.spill_scan_s
            if self.journal is not None:
                await asyncio.to_thread(self.journal.hand_over_orphans, self.spill.directory)
            self._pending = self._pending or await asyncio.to_thread(self.spill.pending)
        if now >= self._retry_at and await self._connect() and self._pending:
            await self._replay()
        # What is queued now goes in one batch, and full batches follow at once; a partial batch
        # (rows that came in while a batch was written, or a backlog's remainder) waits for the
        # next tick, so no row waits longer than a tick and a write. Draining those too, a writer
        # whose transaction takes as long as a request (five round trips) wrote one row per
        # transaction at low concurrency, at several times the CPU per row of a tick's batch.
        batch = self.options.batch_size
        while self._queue and not self._closing:
            await self._put(self._take(batch))
            if len(self._queue) < batch:
                break
        await self._sync_spill()

    async def _connect(self) -> bool:
        try:
            if not self._healthy:
                await self.sink.open()
                if self.stats.write_failures:
                    log.warning("ledger: the %s database answers again; writing resumes", self.sink.name)
                self._healthy = True
                self._backoff = 0.0
        except SinkUnavailable as exc:
            self._failed(exc)
            return False
        if time.monotonic() >= self._next_maintain:
            await self._maintain()
        return True

    async def _maintain(self) -> None:
        try:
            report = await self.sink.maintain(self._today())
        except SinkUnavailable as exc:
            log.warning("ledger: maintenance failed (%s); retrying in a minute", exc)
            self._next_maintain = time.monotonic() + min(60.0, self.options.maintain_every_s)
            return
        self._next_maintain = time.monotonic() + self.options.maintain_every_s
        if report.created or report.dropped or report.deleted_rows:
            log.info("ledger maintenance: created %s, dropped %s, deleted %d rows",
                     report.created, report.dropped, report.deleted_rows)  # fmt: skip

    async def _put(self, batch: list[LedgerRow]) -> None:
        last = self._numbers[len(batch) - 1] if self._numbers else 0
        if self._numbers:
            for _ in batch:
                self._numbers.popleft()
        try:
            await self._put_batch(batch)
        finally:
            if self.journal is not None and last:
                self.journal.mark_handled(last)  # written, spilled or set aside: the journal may let go

    async def _put_batch(self, batch: list[LedgerRow]) -> None:
        if not self._healthy or self._pending or time.monotonic() < self._retry_at:
            self._spill_now(batch)
            return
        try:
            self.stats.written += await self._write(batch)
        except (SinkUnavailable, TimeoutError) as exc:
            self._failed(exc)
            self._spill_now(batch)
        except BaseException:
            self._spill_now(batch)  # cancelled mid-write: the rows may or may not be in; replay decides
            raise

    async def _replay(self) -> None:
        # Our own spilled rows become a sealed file too, so everything replays in spill order. Sealing
        # runs on the loop, never in a thread: the request path may be appending to the same file.
        self.spill.seal()
        while not self._closing and (path := await asyncio.to_thread(self.spill.claim)) is not None:
            log.info("ledger: replaying spill file %s", path.name)
            try:
                for batch in self.spill.read(path, self.options.batch_size):
                    refused = self.stats.rejected
                    inserted = await self._write(batch, replay=True)
                    self.stats.replayed += inserted
                    self.stats.duplicates += len(batch) - inserted - (self.stats.rejected - refused)
            except (SinkUnavailable, TimeoutError) as exc:
                self.spill.release(path)
                self._failed(exc)
                return
            except BaseException:
                self.spill.release(path)
                raise
            self.spill.done(path)
        # Rows spilled while we replayed (a full queue) wait for the next round.
        self._pending = self.spill.appended_rows > 0

    async def _write(self, rows: list[LedgerRow], *, replay: bool = False) -> int:
        """Write `rows`, returning how many were new. A batch the database refuses is split in
        halves, again and again, so that only the rows it refuses are set aside, never their
        neighbours (k bad rows in a batch of n cost about 2k·log2(n) extra writes)."""
        try:
            async with asyncio.timeout(self.options.write_timeout_s):
                return await self.sink.write(rows, replay=replay)
        except SinkRejected as exc:
            if len(rows) == 1:
                self._set_aside(rows, exc)
                return 0
        # Each write is one transaction: the refused one left nothing behind, so both halves are fresh.
        middle = len(rows) // 2
        return await self._write(rows[:middle], replay=replay) + await self._write(rows[middle:], replay=replay)

    # helpers

    def _take(self, count: int) -> list[LedgerRow]:
        queue = self._queue
        return [queue.popleft() for _ in range(min(count, len(queue)))]

    def _spill_now(self, rows: list[LedgerRow], sync: bool = False) -> None:
        try:
            self.stats.spilled += self.spill.append(rows)
            if sync:
                self.spill.sync()
        except OSError:
            self.stats.lost += len(rows)
            log.exception("ledger: could not spill %d rows; they are lost", len(rows))
            return
        self._pending = True

    async def _sync_spill(self) -> None:
        if self.spill.unsynced:
            try:
                await asyncio.to_thread(self.spill.sync)
                if self.spill.size >= self.options.spill_segment_bytes:
                    self.spill.seal()
            except OSError:
                log.exception("ledger: could not fsync the spill file")

    def _set_aside(self, rows: list[LedgerRow], exc: Exception) -> None:
        self.stats.rejected += len(rows)
        log.error("ledger: the database refuses the row of request %s (%s); setting it aside",
                  rows[0].request_id, exc)  # fmt: skip
        try:
            self.spill.set_aside(rows)
        except OSError:
            self.stats.lost += len(rows)
            log.exception("ledger: could not set the refused rows aside; they are lost")

    def _failed(self, exc: BaseException) -> None:
        if self._healthy or not self.stats.write_failures:
            log.warning("ledger: the %s database is unavailable (%s); rows go to the spill file",
                        self.sink.name, exc or type(exc).__name__)  # fmt: skip
        self._healthy = False
        self.stats.write_failures += 1
        self._backoff = min(self.options.retry_max_s, self._backoff * 2 or self.options.retry_initial_s)
        self._retry_at = time.monotonic() + self._backoff

    def _warn_unpriced(self, row: LedgerRow) -> None:
        self.stats.unpriced += 1
        key = (row.deployment, row.served_model)
        if key not in self._warned_unpriced:
            self._warned_unpriced.add(key)
            log.warning("ledger: no price for deployment %s (model %s); its cost is recorded as unknown "
                        "(set `price` on the deployment)", row.deployment, row.served_model)  # fmt: skip
