"""Issue 8, failure 3 at the outbox: an entry Temporal refuses for good goes to the dead
letters at once and holds back nobody else; the drainer survives anything; a corrupt
outbox file is moved aside and the API still starts."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from api.app import create_app as create_api
from api.outbox import Failure, Kind, NewEntry, Outbox, OutboxDrainer, OutboxEntry
from leadrelay.models import Submission
from sandbox.server import serve_in_thread
from tests.support import Stack, eventually
from tests.test_pipeline import leads_of, wait_processed


def submission_entry(lead_key: str, form: str = "proftest") -> NewEntry:
    submission = Submission(submission_id=f"poison-{lead_key[-12:]}", form=form, received_at="t")
    submission.email = lead_key if "@" in lead_key else None
    submission.phone = None if "@" in lead_key else lead_key
    return NewEntry(
        Kind.SUBMISSION,
        f"lead-{lead_key}",
        {"lead_key": lead_key, "submission": dataclasses.asdict(submission)},
    )


@pytest.fixture
async def poisoned_api(
    tmp_path: Path, stack: Stack, new_phone: Callable[[], str]
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """An API whose outbox already holds what the old code let in: 120 submissions whose
    workflow ids are over 1,000 characters, ahead of one real person's submission."""
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    poison = [submission_entry(f"{n}{'x' * 1090}@example.com") for n in range(120)]
    real_phone = new_phone()
    await outbox.append([*poison, submission_entry(real_phone)])
    outbox.close()
    settings = stack.settings.model_copy(update={"leadrelay_outbox_path": path})
    with serve_in_thread(create_api(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=stack.admin_headers) as api:
            yield api, real_phone


async def test_refused_entries_are_dead_lettered_at_once_and_hold_back_nobody(
    clean_sandbox: Stack, poisoned_api: tuple[httpx.AsyncClient, str], new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    api, queued_phone = poisoned_api
    fresh_phone = new_phone()
    answer = await api.post("/api/landing/proftest", json={"phone": fresh_phone})
    assert answer.status_code == 202

    async def drained() -> bool:
        health = (await api.get("/healthz")).json()
        return health["outbox_depth"] == 0 and health["dead_letters"] == 120

    await eventually(drained, within=60)

    for phone in (queued_phone, fresh_phone):
        await wait_processed(stack, phone, 1)
    state = await stack.sandbox_state()
    assert all(leads_of(state, phone[1:]) for phone in (queued_phone, fresh_phone))
    listed = (await api.get("/api/admin/dead-letters")).json()
    assert listed["count"] == 120
    first = listed["dead_letters"][0]
    assert first["workflow_id_chars"] > 1000 and "INVALID_ARGUMENT" in first["error"]
    metrics = (await api.get("/metrics")).text
    assert "leadrelay_outbox_dead_letters 120.0" in metrics
    assert "leadrelay_outbox_drainer_alive 1.0" in metrics

    # Re-delivery puts it back in the outbox; still refused, it is buried again.
    again = await api.post(f"/api/admin/dead-letters/{first['id']}/redeliver")
    assert again.status_code == 202

    async def buried_again() -> bool:
        listed = (await api.get("/api/admin/dead-letters")).json()
        return listed["count"] == 120 and first["id"] not in {
            d["id"] for d in listed["dead_letters"]
        }

    await eventually(buried_again, within=30)
    assert (await api.post("/api/admin/dead-letters/999999/redeliver")).status_code == 404
    assert (
        await api.get("/api/admin/dead-letters", headers={"Authorization": ""})
    ).status_code == 401


async def test_dead_letters_are_delivered_after_the_fix(tmp_path: Path, stack: Stack) -> None:
    """A payload our code could not read (a bug) is dead-lettered; after the fix it is
    re-delivered from the dead letters, one or all."""
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    await outbox.append([NewEntry(Kind.SUBMISSION, f"lead-{n}", {"n": n}) for n in (1, 2, 3)])
    fixed = False
    delivered: list[int] = []

    async def deliver(entry: OutboxEntry) -> None:
        if not fixed:
            raise TypeError("payload has no 'submission'")
        delivered.append(entry.payload["n"])

    def classify(err: BaseException) -> Failure:
        return Failure.PERMANENT if isinstance(err, TypeError) else Failure.RETRY

    drainer = OutboxDrainer(outbox, deliver, classify=classify)
    await drainer.drain_once()
    assert (outbox.depth, outbox.dead_letters) == (0, 3)
    first, *_ = await outbox.list_dead()
    fixed = True
    assert await outbox.requeue_dead(first.id) is not None
    await drainer.drain_once()
    assert delivered == [1] and (outbox.depth, outbox.dead_letters) == (0, 2)
    assert await outbox.requeue_all_dead() == 2
    await drainer.drain_once()
    assert delivered == [1, 2, 3] and (outbox.depth, outbox.dead_letters) == (0, 0)
    outbox.close()


class FlakyOutbox(Outbox):
    """Its disk fails on the first reads, as a full disk or a locked file would."""

    failures = 2

    async def oldest(self, limit: int, after_id: int = 0) -> list[OutboxEntry]:
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return await super().oldest(limit, after_id)


async def test_the_drainer_survives_any_exception(tmp_path: Path) -> None:
    outbox = FlakyOutbox(tmp_path / "outbox.sqlite3")
    await outbox.append([NewEntry(Kind.SUBMISSION, "lead-a", {"n": 1})])
    delivered: list[int] = []

    async def deliver(entry: OutboxEntry) -> None:
        delivered.append(entry.payload["n"])

    drainer = OutboxDrainer(outbox, deliver, interval=0.05)
    task = drainer.start()
    try:

        async def done() -> bool:
            return delivered == [1]

        await eventually(done, within=10, interval=0.05)
        assert drainer.alive and outbox.failures == 0
    finally:
        task.cancel()
        outbox.close()


async def test_a_corrupt_outbox_file_is_moved_aside_and_the_api_starts(
    tmp_path: Path, stack: Stack, new_phone: Callable[[], str]
) -> None:
    path = tmp_path / "outbox.sqlite3"
    garbage = b"this is not a database " * 400
    await asyncio.to_thread(path.write_bytes, garbage)
    settings = stack.settings.model_copy(update={"leadrelay_outbox_path": path})
    phone = new_phone()
    with serve_in_thread(create_api(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as api:
            assert (await api.get("/healthz")).status_code == 200
            answer = await api.post("/api/landing/proftest", json={"phone": phone})
            assert answer.status_code == 202
    await wait_processed(stack, phone, 1)
    [aside] = await asyncio.to_thread(lambda: list(tmp_path.glob("outbox.sqlite3.corrupt-*")))
    assert await asyncio.to_thread(aside.read_bytes) == garbage
    replacement = Outbox(path)
    assert replacement.depth == 0 and replacement.moved_aside is None
    replacement.close()


async def test_poison_tolerant_drain_does_not_stall_behind_a_full_page(tmp_path: Path) -> None:
    """More failing entries than one page must not hide the entries behind them."""
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    await outbox.append([NewEntry(Kind.SUBMISSION, f"stuck-{n}", {"n": n}) for n in range(150)])
    await outbox.append([NewEntry(Kind.SUBMISSION, "lead-ok", {"n": "ok"})])
    delivered: list[object] = []

    async def deliver(entry: OutboxEntry) -> None:
        if entry.workflow_id.startswith("stuck-"):
            raise RuntimeError("try later")
        delivered.append(entry.payload["n"])

    await OutboxDrainer(outbox, deliver).drain_once(batch=100)
    assert delivered == ["ok"]
    outbox.close()
