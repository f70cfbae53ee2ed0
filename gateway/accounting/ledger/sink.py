"""Where the writer puts rows: PostgreSQL, or SQLite for the embedded default.

A sink's `write` is idempotent: rows it already holds (same request id and time) are skipped,
and the per-day rollup grows only by the rows really inserted. That is what makes replaying a
spill file after an ambiguous failure safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from gateway.accounting.ledger.row import LedgerRow


class SinkUnavailable(Exception):
    """The database cannot take rows now (down, slow, locked); retry later."""


class SinkRejected(Exception):
    """The database refuses these rows for good (they break a constraint); retrying cannot help."""


@dataclass(slots=True)
class Maintenance:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    # SQLite has no partitions: retention deletes rows instead.
    deleted_rows: int = 0


class Sink(Protocol):
    name: str

    async def open(self) -> None:
        """Connect and prepare; raise SinkUnavailable when the database cannot be reached."""
        ...

    async def write(self, rows: Sequence[LedgerRow], *, replay: bool = False) -> int:
        """Insert rows and roll them up in one transaction; return how many were new.

        `replay`: the rows may be in the database already (they come from a spill file). A fresh
        batch may take a faster path that assumes they are not, and falls back if they are.
        """
        ...

    async def maintain(self, today: date) -> Maintenance:
        """Create the partitions ahead of `today` and drop (or delete) what is past retention."""
        ...

    async def close(self) -> None: ...
