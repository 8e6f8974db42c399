"""A local, fsync'd queue for what Temporal could not take within the ack deadline.

The API answers a form or a webhook at once. When Temporal is down or slow, the
delivery is written here instead, and `OutboxDrainer` hands it to Temporal later. A
delivery that timed out may still have reached Temporal, so every delivery must be safe
to repeat: lead workflows drop repeated submission ids, and entity workflows drop
repeated event keys.

What Temporal refuses for good (an invalid argument, a payload too large, an unknown
namespace) is moved to the `dead_letters` table at once, where an operator lists it and
re-delivers it after a fix (`/api/admin/dead-letters`). Nothing is ever deleted unsent.
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
from enum import StrEnum
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
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    dead_at REAL NOT NULL,
    kind TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL
);
"""
_COLUMNS = "id, created_at, kind, workflow_id, payload, attempts, last_error, traceparent"


class Kind(StrEnum):
    """What an entry delivers; the values are what the outbox file stores."""

    SUBMISSION = "submission"
    ENTITY_EVENT = "entity-event"
    RAW_WEBHOOK = "raw-webhook"


@dataclass
class OutboxEntry:
    id: int
    created_at: float
    kind: Kind
    workflow_id: str
    payload: dict[str, Any]
    attempts: int
    last_error: str | None
    traceparent: str | None = None


@dataclass
class NewEntry:
    kind: Kind
    workflow_id: str
    payload: dict[str, Any]
    traceparent: str | None = None
    """The W3C trace context of the request that accepted it."""


@dataclass
class DeadLetter:
    id: int
    created_at: float
    dead_at: float
    kind: Kind
    workflow_id: str
    attempts: int
    error: str
    payload_bytes: int


class Outbox:
    """All disk work runs on one thread of its own, so a burst never waits for the shared
    thread pool, and appends made while a commit is on disk share the next commit: a
    burst pays for one fsync per batch, not one per request.

    A file SQLite cannot read is moved aside (kept for an operator) and replaced: the API
    must start, and a corrupt queue must not take intake down with it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self.moved_aside: Path | None = None
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError as err:
            self.moved_aside = _move_aside(path)
            log.critical(
                "OUTBOX FILE %s IS CORRUPT (%s): moved to %s and replaced by an empty outbox; "
                "deliveries it held are NOT being drained, recover them from that file",
                path,
                err,
                self.moved_aside,
            )
            self._db = self._open(path)
        self._depth = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        self._dead = int(self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])
        self._oldest_at = self._read_oldest_at()
        self._waiting: list[tuple[list[NewEntry], asyncio.Future[None]]] = []
        self._committing: asyncio.Task[None] | None = None

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            # WAL with synchronous=FULL fsyncs the log at every commit: an answered request
            # survives a crash of the API process or the machine.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            if "traceparent" not in columns:  # every outbox file gets the column, old ones too
                db.execute("ALTER TABLE outbox ADD COLUMN traceparent TEXT")
            (verdict,) = db.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {verdict}")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    @property
    def depth(self) -> int:
        """Kept in memory, so the hot path can ask without touching the disk."""
        return self._depth

    @property
    def dead_letters(self) -> int:
        return self._dead

    @property
    def oldest_age_seconds(self) -> float:
        """Age of the oldest waiting delivery; 0 when the outbox is empty."""
        oldest = self._oldest_at
        return max(0.0, time.time() - oldest) if oldest is not None else 0.0

    async def append(self, entries: list[NewEntry]) -> None:
        """Returns once the entries are on disk."""
        committed = asyncio.get_running_loop().create_future()
        self._waiting.append((entries, committed))
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit_waiting())
        await committed

    async def oldest(self, limit: int, after_id: int = 0) -> list[OutboxEntry]:
        return await self._on_disk(self._oldest, limit, after_id)

    async def remove(self, entry_id: int) -> None:
        await self._on_disk(self._remove, entry_id)

    async def record_failure(self, entry_id: int, error: str) -> None:
        await self._on_disk(self._record_failure, entry_id, error)

    async def bury(self, entry: OutboxEntry, error: str) -> None:
        """Move an entry Temporal refused for good to the dead letters, in one transaction."""
        await self._on_disk(self._bury, entry, error)

    async def bury_new(self, entry: NewEntry, error: str) -> None:
        """A delivery that is refused before it was ever queued (e.g. too large)."""
        await self._on_disk(self._bury_new, entry, error)

    async def list_dead(self, limit: int = 100) -> list[DeadLetter]:
        return await self._on_disk(self._list_dead, limit)

    async def requeue_dead(self, dead_id: int) -> int | None:
        """Back into the outbox, at its end; None if there is no such dead letter."""
        return await self._on_disk(self._requeue_dead, dead_id)

    async def requeue_all_dead(self) -> int:
        """Every dead letter back into the outbox, oldest first; returns how many."""
        return await self._on_disk(self._requeue_all_dead)

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
        if self._oldest_at is None:
            self._oldest_at = now

    def _oldest(self, limit: int, after_id: int) -> list[OutboxEntry]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        ).fetchall()
        return [_entry(row) for row in rows]

    def _remove(self, entry_id: int) -> None:
        if self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,)).rowcount:
            self._forget()

    def _forget(self) -> None:
        self._depth -= 1
        self._oldest_at = self._read_oldest_at()

    def _read_oldest_at(self) -> float | None:
        row = self._db.execute("SELECT created_at FROM outbox ORDER BY id LIMIT 1").fetchone()
        return float(row[0]) if row else None

    def _record_failure(self, entry_id: int, error: str) -> None:
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
            (error, entry_id),
        )

    def _bury(self, entry: OutboxEntry, error: str) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO dead_letters "
                "(created_at, dead_at, kind, workflow_id, payload, attempts, error) "
                "SELECT created_at, ?, kind, workflow_id, payload, attempts + 1, ? "
                "FROM outbox WHERE id = ?",
                (time.time(), error, entry.id),
            )
            removed = self._db.execute("DELETE FROM outbox WHERE id = ?", (entry.id,)).rowcount
        if removed:
            self._dead += 1
            self._forget()

    def _bury_new(self, entry: NewEntry, error: str) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO dead_letters "
            "(created_at, dead_at, kind, workflow_id, payload, attempts, error) "
            "VALUES (?, ?, ?, ?, ?, 0, ?)",
            (now, now, entry.kind, entry.workflow_id, json.dumps(entry.payload), error),
        )
        self._dead += 1

    def _list_dead(self, limit: int) -> list[DeadLetter]:
        rows = self._db.execute(
            "SELECT id, created_at, dead_at, kind, workflow_id, attempts, error, "
            "length(CAST(payload AS BLOB)) FROM dead_letters ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        return [DeadLetter(row[0], row[1], row[2], Kind(row[3]), *row[4:]) for row in rows]

    def _requeue_dead(self, dead_id: int) -> int | None:
        with self._db:
            self._db.execute("BEGIN")
            row = self._db.execute(
                "SELECT kind, workflow_id, payload FROM dead_letters WHERE id = ?", (dead_id,)
            ).fetchone()
            if row is None:
                return None
            now = time.time()
            cursor = self._db.execute(
                "INSERT INTO outbox (created_at, kind, workflow_id, payload) VALUES (?, ?, ?, ?)",
                (now, *row),
            )
            self._db.execute("DELETE FROM dead_letters WHERE id = ?", (dead_id,))
        self._dead -= 1
        self._depth += 1
        if self._oldest_at is None:
            self._oldest_at = now
        return cursor.lastrowid

    def _requeue_all_dead(self) -> int:
        now = time.time()
        with self._db:
            self._db.execute("BEGIN")
            moved = self._db.execute(
                "INSERT INTO outbox (created_at, kind, workflow_id, payload) "
                "SELECT ?, kind, workflow_id, payload FROM dead_letters ORDER BY id",
                (now,),
            ).rowcount
            self._db.execute("DELETE FROM dead_letters")
        self._dead -= moved
        self._depth += moved
        if moved and self._oldest_at is None:
            self._oldest_at = now
        return moved


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    return OutboxEntry(
        row[0], row[1], Kind(row[2]), row[3], json.loads(row[4]), row[5], row[6], row[7]
    )


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.rename(aside.with_name(aside.name + suffix))
    return aside


Deliver = Callable[[OutboxEntry], Awaitable[None]]


class Failure(StrEnum):
    """How a failed delivery is treated: PERMANENT goes to the dead letters, UNREACHABLE
    ends the pass (no other entry would get through), RETRY holds back its workflow."""

    PERMANENT = "permanent"
    UNREACHABLE = "unreachable"
    RETRY = "retry"


Classify = Callable[[BaseException], Failure]


class _Outcome(StrEnum):
    DELIVERED = "delivered"
    BURIED = "buried"
    HELD = "held"
    STOP = "stop"


# Deliveries in flight at once while draining a page.
DRAIN_CONCURRENCY = 32


class OutboxDrainer:
    """Delivers the outbox in order. A failure holds back only that workflow's later
    entries; a permanent refusal moves the entry to the dead letters at once. The loop
    itself survives any exception: it logs, backs off and goes on."""

    def __init__(
        self,
        outbox: Outbox,
        deliver: Deliver,
        *,
        classify: Classify = lambda err: Failure.RETRY,
        interval: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        self._outbox = outbox
        self._deliver = deliver
        self._classify = classify
        self._interval = interval
        self._max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._failures = 0
        self.last_pass_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    @property
    def alive(self) -> bool:
        """The loop runs, and has finished a pass within its longest pause (plus slack)."""
        if self._task is None or self._task.done() or self.last_pass_at is None:
            return False
        return time.monotonic() - self.last_pass_at < self._max_backoff + 60

    def start(self) -> asyncio.Task[None]:
        self.last_pass_at = time.monotonic()
        self._task = asyncio.create_task(self.run(), name="outbox-drainer")
        return self._task

    async def run(self) -> None:
        self.last_pass_at = time.monotonic()
        while True:
            pause = self._interval
            try:
                await self.drain_once()
            except Exception:
                self._failures += 1
                pause = min(self._max_backoff, self._interval * 2**self._failures)
                log.exception("outbox drainer pass failed; next pass in %.1f s", pause)
            else:
                self._failures = 0
            self.last_pass_at = time.monotonic()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def drain_once(self, batch: int = 100) -> int:
        """One pass over the whole outbox, a page at a time. Within a page, several
        workflows are delivered at once (each workflow's entries in order), so a burst
        that went to the outbox reaches Temporal in about the time of a few deliveries,
        and a form behind a flood of another is not held back by every entry of it."""
        delivered = 0
        held_back: set[str] = set()
        after_id = 0
        while self._outbox.depth:
            page = await self._outbox.oldest(batch, after_id)
            if not page:
                break
            after_id = page[-1].id
            chains: dict[str, list[OutboxEntry]] = {}
            for entry in page:
                if entry.workflow_id not in held_back:
                    chains.setdefault(entry.workflow_id, []).append(entry)
            stop = asyncio.Event()
            turns = asyncio.Semaphore(DRAIN_CONCURRENCY)
            results = await asyncio.gather(
                *(self._deliver_chain(chain, turns, stop) for chain in chains.values())
            )
            for workflow_id, (count, held) in zip(chains, results, strict=True):
                delivered += count
                if held:
                    held_back.add(workflow_id)
            if stop.is_set():
                return delivered
        return delivered

    async def _deliver_chain(
        self, entries: list[OutboxEntry], turns: asyncio.Semaphore, stop: asyncio.Event
    ) -> tuple[int, bool]:
        """One workflow's entries in order: how many were delivered, and whether the rest
        are held back (a failure, or Temporal unreachable, which stops the whole pass)."""
        delivered = 0
        for entry in entries:
            async with turns:
                if stop.is_set():
                    return delivered, True
                outcome = await self._deliver_one(entry)
            if outcome is _Outcome.DELIVERED:
                delivered += 1
            elif outcome is _Outcome.HELD:
                return delivered, True
            elif outcome is _Outcome.STOP:
                stop.set()
                return delivered, True
        return delivered, False

    async def _deliver_one(self, entry: OutboxEntry) -> _Outcome:
        try:
            await self._deliver(entry)
        except Exception as err:
            failure = self._classify(err)
            if failure is Failure.PERMANENT:
                log.error(
                    "outbox entry %s (%s) refused for good, moved to dead letters: %s",
                    entry.id,
                    entry.kind,
                    err,
                )
                await self._outbox.bury(entry, _describe(err))
                return _Outcome.BURIED
            log.warning("outbox entry %s not delivered yet: %s", entry.id, err)
            await self._outbox.record_failure(entry.id, _describe(err))
            return _Outcome.STOP if failure is Failure.UNREACHABLE else _Outcome.HELD
        await self._outbox.remove(entry.id)
        return _Outcome.DELIVERED


def _describe(err: BaseException) -> str:
    """`RPCError[INVALID_ARGUMENT]: WorkflowId exceeds ...`: the status says why."""
    status = getattr(err, "status", None)
    name = getattr(status, "name", None)
    return f"{type(err).__name__}[{name}]: {err}" if name else f"{type(err).__name__}: {err}"
