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
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    kind TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
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


class Outbox:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # WAL with synchronous=FULL fsyncs the log at every commit: an answered request
        # survives a crash of the API process or the machine.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        self._depth = self._count()

    @property
    def depth(self) -> int:
        """Kept in memory, so the hot path can ask without touching the disk."""
        return self._depth

    def append(self, kind: str, workflow_id: str, payload: dict[str, Any]) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO outbox (created_at, kind, workflow_id, payload) VALUES (?, ?, ?, ?)",
                (time.time(), kind, workflow_id, json.dumps(payload, ensure_ascii=False)),
            )
            self._depth += 1
            return int(cursor.lastrowid or 0)

    def oldest(self, limit: int) -> list[OutboxEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, created_at, kind, workflow_id, payload, attempts, last_error "
                "FROM outbox ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            OutboxEntry(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6])
            for row in rows
        ]

    def remove(self, entry_id: int) -> None:
        with self._lock:
            removed = self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,)).rowcount
            self._depth -= removed

    def record_failure(self, entry_id: int, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error, entry_id),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


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
        for entry in await asyncio.to_thread(self._outbox.oldest, batch):
            if entry.workflow_id in held_back:
                continue
            try:
                await self._deliver(entry)
            except Exception as err:  # any failure: keep the entry, try again later
                held_back.add(entry.workflow_id)
                log.warning("outbox entry %s not delivered yet: %s", entry.id, err)
                await asyncio.to_thread(self._outbox.record_failure, entry.id, repr(err))
                continue
            await asyncio.to_thread(self._outbox.remove, entry.id)
            delivered += 1
        return delivered
