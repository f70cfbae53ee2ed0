"""The spill: append-only files that hold ledger rows while the database cannot take them.

Layout, under one directory shared by every worker process of a gateway:

    <created_ns>-<pid>.active                 a worker appends here (one per live worker)
    <created_ns>-<pid>.ndjson                 sealed: complete, waiting to be replayed
    <created_ns>-<pid>.ndjson.replaying-<pid> claimed by the worker replaying it

File names sort in creation order, so replay goes oldest first. Claiming is an atomic rename,
so two workers never replay the same file; a replay that fails renames the file back, and
replaying it again is harmless because the database skips rows it already holds. Files left
by a dead process (`.active` or `.replaying-*`) are sealed or released by whoever finds them.

Durability: each append is one write(2) of whole lines on an O_APPEND descriptor, so a row is
in the OS as soon as `append` returns and survives the process being killed. `sync()` fsyncs
what was appended since the last call; the writer calls it after every batch it spills, so a
power loss can cost at most the rows of the last flush interval.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from gateway.accounting.ledger.row import LedgerRow

log = logging.getLogger("gateway.ledger")

ACTIVE = ".active"
SEALED = ".ndjson"
CLAIMED = ".replaying-"
REJECTED = ".rejected"


class Spill:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd: int | None = None
        self._active: Path | None = None
        self._size = 0
        self._unsynced = False
        self._dir_unsynced = False
        # Rows this process appended that are not yet sealed; others' files are found by scanning.
        self.appended_rows = 0
        self.bad_lines = 0
        self._claimed: set[Path] = set()

    # writing

    def append(self, rows: Iterable[LedgerRow]) -> int:
        data = b"".join(row.to_json() for row in rows)
        if not data:
            return 0
        if self._fd is None:
            self._open()
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)
        self._unsynced = True
        count = data.count(b"\n")
        self.appended_rows += count
        return count

    def sync(self) -> None:
        if self._fd is not None and self._unsynced:
            self._unsynced = False
            os.fsync(self._fd)
        if self._dir_unsynced:
            self._dir_unsynced = False
            _sync_dir(self.directory)

    @property
    def unsynced(self) -> bool:
        return self._unsynced or self._dir_unsynced

    @property
    def size(self) -> int:
        """Bytes in this process's active file; the writer seals it past a size, never the request path."""
        return self._size

    def seal(self) -> None:
        """Close this process's active file and make it replayable."""
        if self._fd is None:
            return
        assert self._active is not None
        self.sync()
        os.close(self._fd)
        self._fd = None
        if self._size:
            os.rename(self._active, self._active.with_suffix(SEALED))
        else:
            self._active.unlink(missing_ok=True)
        self._active = None
        self._size = 0
        self.appended_rows = 0
        _sync_dir(self.directory)

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._active = self.directory / f"{time.time_ns():020d}-{os.getpid()}{ACTIVE}"
        self._fd = os.open(self._active, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._size = 0
        self._dir_unsynced = True

    def set_aside(self, rows: Iterable[LedgerRow]) -> Path:
        """Rows the database refuses for good, kept in a file of their own for an operator."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{time.time_ns():020d}-{os.getpid()}{REJECTED}"
        with path.open("ab") as f:
            f.write(b"".join(row.to_json() for row in rows))
            f.flush()
            os.fsync(f.fileno())
        _sync_dir(self.directory)
        return path

    # replaying

    def pending(self) -> bool:
        """Whether anything waits to be replayed: this process's rows or any sealed or orphaned file."""
        if self.appended_rows:
            return True
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.directory):
                name = entry.name
                if name.endswith(SEALED) or (
                    (name.endswith(ACTIVE) or CLAIMED in name) and self._orphaned(self.directory / name)
                ):
                    return True
        return False

    def claim(self) -> Path | None:
        """Take the oldest sealed file (adopting orphans first); None when there is none."""
        with contextlib.suppress(FileNotFoundError):
            for path in sorted(self.directory.iterdir()):
                if (path.name.endswith(ACTIVE) or CLAIMED in path.name) and self._orphaned(path):
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(path, self.directory / (path.name.split(".", 1)[0] + SEALED))
            for path in sorted(self.directory.glob("*" + SEALED)):
                claimed = path.with_name(f"{path.name}{CLAIMED}{os.getpid()}")
                try:
                    os.rename(path, claimed)
                except FileNotFoundError:
                    continue  # another worker was quicker
                self._claimed.add(claimed)
                return claimed
        return None

    def read(self, path: Path, batch_size: int) -> Iterator[list[LedgerRow]]:
        """The file's rows in order, in batches. A torn last line (a crash mid-write) is skipped."""
        batch: list[LedgerRow] = []
        with path.open("rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    batch.append(LedgerRow.from_json(line))
                except (ValueError, TypeError):
                    self.bad_lines += 1
                    log.error("ledger spill %s line %d is not a row; skipped", path.name, number)
                    continue
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def done(self, path: Path) -> None:
        self._claimed.discard(path)
        path.unlink(missing_ok=True)

    def release(self, path: Path) -> None:
        """Give a claimed file back after a failed replay; it is retried later."""
        self._claimed.discard(path)
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, self.directory / path.name.split(CLAIMED, 1)[0])

    def reject(self, path: Path) -> Path:
        """Set aside a file the database refuses, for an operator to look at; it is never dropped."""
        self._claimed.discard(path)
        target = self.directory / (path.name.split(CLAIMED, 1)[0] + REJECTED)
        os.rename(path, target)
        return target

    def _orphaned(self, path: Path) -> bool:
        if path == self._active or path in self._claimed:
            return False
        owner = path.name.rsplit("-", 1)[1] if CLAIMED in path.name else path.name.split("-", 1)[1].split(".", 1)[0]
        try:
            pid = int(owner)
        except ValueError:
            return False
        # Our own pid on a file that is not ours: a previous process that had the same pid.
        return pid == os.getpid() or not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sync_dir(directory: Path) -> None:
    # A new or renamed file survives a power loss only once its directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
