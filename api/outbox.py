"""A local, fsync'd queue for what Temporal could not take within the ack deadline.

The API answers a form or a webhook at once. When Temporal is down or slow, the
delivery is written here instead, and `OutboxDrainer` hands it to Temporal later. A
delivery that timed out may still have reached Temporal, so every delivery must be safe
to repeat: lead workflows drop repeated submission ids, and entity workflows drop
repeated event keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    kind TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    traceparent TEXT
)
"""


@dataclass
class OutboxEntry:
    id: int
    created_at: float
    kind: str
    workflow_id: str
    payload: dict[str, Any]
    attempts: int
    last_error: str | None
    traceparent: str | None = None


@dataclass
class NewEntry:
    kind: str
    workflow_id: str
    payload: dict[str, Any]
    traceparent: str | None = None
    """The W3C trace context of the request that accepted it."""


class Outbox:
    """All disk work runs on one thread of its own, so a burst never waits for the shared
    thread pool, and appends made while a commit is on disk share the next commit: a
    burst pays for one fsync per batch, not one per request."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # WAL with synchronous=FULL fsyncs the log at every commit: an answered request
        # survives a crash of the API process or the machine.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "traceparent" not in columns:  # an outbox written before tracing
            self._db.execute("ALTER TABLE outbox ADD COLUMN traceparent TEXT")
        self._depth = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        self._waiting: list[tuple[list[NewEntry], asyncio.Future[None]]] = []
        self._committing: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Kept in memory, so the hot path can ask without touching the disk."""
        return self._depth

    async def append(self, entries: list[NewEntry]) -> None:
        """Returns once the entries are on disk."""
        committed = asyncio.get_running_loop().create_future()
        self._waiting.append((entries, committed))
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit_waiting())
        await committed

    async def oldest(self, limit: int) -> list[OutboxEntry]:
        return await self._on_disk(self._oldest, limit)

    async def remove(self, entry_id: int) -> None:
        await self._on_disk(self._remove, entry_id)

    async def record_failure(self, entry_id: int, error: str) -> None:
        await self._on_disk(self._record_failure, entry_id, error)

    def close(self) -> None:
        self._disk.shutdown(wait=True)
        self._db.close()

    async def _commit_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._on_disk(self._insert, [e for entries, _ in batch for e in entries])
            except Exception as err:  # every caller in the batch must hear of it
                for _, committed in batch:
                    committed.set_exception(err)
            else:
                for _, committed in batch:
                    committed.set_result(None)

    async def _on_disk(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._disk, work, *args)

    def _insert(self, entries: list[NewEntry]) -> None:
        now = time.time()
        rows = [
            (now, e.kind, e.workflow_id, json.dumps(e.payload, ensure_ascii=False), e.traceparent)
            for e in entries
        ]
        with self._db:  # one transaction, one fsync
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO outbox (created_at, kind, workflow_id, payload, traceparent) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        self._depth += len(rows)

    def _oldest(self, limit: int) -> list[OutboxEntry]:
        rows = self._db.execute(
            "SELECT id, created_at, kind, workflow_id, payload, attempts, last_error, "
            "traceparent FROM outbox ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            OutboxEntry(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7])
            for row in rows
        ]

    def _remove(self, entry_id: int) -> None:
        self._depth -= self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,)).rowcount

    def _record_failure(self, entry_id: int, error: str) -> None:
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
            (error, entry_id),
        )


Deliver = Callable[[OutboxEntry], Awaitable[None]]


class OutboxDrainer:
    """Delivers the outbox in order; a failure holds back only that workflow's later entries."""

    def __init__(self, outbox: Outbox, deliver: Deliver, *, interval: float = 0.5) -> None:
        self._outbox = outbox
        self._deliver = deliver
        self._interval = interval
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self.drain_once()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)

    async def drain_once(self, batch: int = 100) -> int:
        if not self._outbox.depth:
            return 0
        delivered = 0
        held_back: set[str] = set()
        for entry in await self._outbox.oldest(batch):
            if entry.workflow_id in held_back:
                continue
            try:
                await self._deliver(entry)
            except Exception as err:  # any failure: keep the entry, try again later
                held_back.add(entry.workflow_id)
                log.warning("outbox entry %s not delivered yet: %s", entry.id, err)
                await self._outbox.record_failure(entry.id, repr(err))
                continue
            await self._outbox.remove(entry.id)
            delivered += 1
        return delivered
