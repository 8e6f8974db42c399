"""One long-running batcher per kind of write (lead creates, notes): many people's writes
in one amoCRM request, and still one request per activity.

Lead workflows signal `submit` with their item and wait for a `batch_answer` signal back.
- Idle (no batch in flight, none in the last `linger_seconds`), the first item goes out
  at once, alone. The first item of a form with no item in flight and none in a batch
  for `max_linger_seconds` also goes at once, with whatever else waits, so a quiet form's
  visitor is not held back by another form's backlog.
- Busy, what arrived meanwhile goes out together, up to 50 items. A batch waits
  `linger_seconds` since the previous batch (or since the oldest waiting item arrived), and
  then until `fill_items` are waiting, but never more than `max_linger_seconds`: a slow
  flow (people who needed two searches each) still fills its batches, and a fast one goes
  every linger. Once nothing new has arrived for `FLOW_STOPPED`, the burst is over and what
  waits goes (waiting longer saves nothing).
- 50 waiting go at once. One batch is in flight at a time; a second only when it is full
  or carries a quiet form's first item.
Runs started before the `batch-fill` patch keep the older rule: a batch per linger, a
second of quiet, forms quiet after one linger.
Items are taken round-robin by form, so a flood on one form cannot fill every batch.

Answers are matched by `request_id`, never by position. A lost answer (timeout, 5xx) is
reported `unknown` to every member, and each of them looks (search, note lookup) before
writing again. A batch refused with a 400 is split: the items the validation errors name
go alone and the rest together (halves when none is named), so one bad item cannot park
49 good ones; an item refused alone is `failed`. A 429 or a 403 applied nothing: the items
wait for the backoff and go again. The state carried across continue-as-new is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.amocrm import AmoFailure
    from activities.amocrm_batches import (
        MAX_BATCH_ITEMS,
        AmoBatchActivities,
        LeadsBatch,
        LeadToCreate,
        NotesBatch,
        NoteToAdd,
    )
    from amocrm.models import CreatedLead, CreatedNote, NewLead, NewNote
    from leadrelay.models import FailureKind
    from leadrelay.settings import AMOCRM_TASK_QUEUE
    from workflows import priorities
    from workflows.amocrm_calls import (
        AMOCRM_ATTEMPT_TIMEOUT,
        WRITE_ONCE,
        failure_type,
        write_backoff,
    )


class BatchKind(StrEnum):
    CREATES = "creates"
    NOTES = "notes"


BATCHER_IDS = {
    BatchKind.CREATES: "amocrm-batcher-creates",
    BatchKind.NOTES: "amocrm-batcher-notes",
}
ANSWER_SIGNAL = "batch_answer"
"""The signal a requester defines to receive its `BatchAnswer`."""

BATCHES_PER_RUN = 100
# A second batch may be in flight only when it is full or carries a quiet form's first item:
# a backlog drains without waiting for each answer, and a trickle still gathers into one
# batch per linger.
MAX_BATCHES_IN_FLIGHT = 2
# No new item for this long: the flow has stopped, so what is waiting goes. Creates come
# one by one as searches end (2.4 a second even when each person needs two searches), with
# gaps of about a second every few seconds, so a second and a half without one means the
# burst is over; notes come in clumps, one clump per answered create batch, so half a
# second after a clump nothing more is coming.
FLOW_STOPPED = {
    BatchKind.CREATES: timedelta(seconds=1.5),
    BatchKind.NOTES: timedelta(seconds=0.5),
}
# Runs started before the fill rule keep their rule: a second of quiet, linger at most.
QUIET_BEFORE_FILL = timedelta(seconds=1)
FILL_PATCH = "batch-fill"
# A batch is one activity input; Temporal refuses a payload over 2 MB and warns at 512 KB.
MAX_BATCH_BYTES = 256_000
# What continue-as-new carries at most; requests beyond it are told to send again.
MAX_CARRIED_BYTES = 1_000_000


class Outcome(StrEnum):
    DONE = "done"  # written: `lead` or `note` says what amoCRM made
    UNKNOWN = "unknown"  # the answer was lost: look before writing again
    FAILED = "failed"  # refused for good (rejected alone, auth): an operator must act
    RESEND = "resend"  # the batcher did not keep the request: send it again


@dataclass
class BatchRequest:
    requester: str  # the workflow id the answer goes to
    form: str
    received_at: str | None = None  # the submission's 202, for speed-to-lead
    lead: NewLead | None = None
    note: NewNote | None = None
    # The requester's trace (W3C), so the batch request's span links back to it.
    traceparent: str | None = None

    @property
    def request_id(self) -> str:
        written = self.lead or self.note
        assert written is not None and written.request_id, "a batched write needs a request_id"
        return written.request_id


@dataclass
class BatchAnswer:
    request_id: str
    outcome: Outcome
    lead: CreatedLead | None = None
    note: CreatedNote | None = None
    failure_type: str | None = None
    message: str | None = None
    # The failure's first detail: e.g. which optional parts a 400 refused (`rejection`).
    details: dict[str, Any] | None = None
    # The batch it went in (`<batcher id>/<number>`), as its activity span names it.
    batch: str | None = None


@dataclass
class BatcherConfig:
    linger_seconds: float = 4.0
    max_items: int = MAX_BATCH_ITEMS
    fill_items: int = 25
    max_linger_seconds: float = 12.0


@dataclass
class BatcherStart:
    kind: BatchKind
    config: BatcherConfig = field(default_factory=BatcherConfig)
    # Carried by continue-as-new: requests not yet sent, and split parts of a refused batch.
    pending: list[BatchRequest] = field(default_factory=list)
    splits: list[list[BatchRequest]] = field(default_factory=list)
    batches_sent: int = 0
    items_sent: int = 0
    runs: int = 1


@dataclass
class BatcherStatus:
    kind: BatchKind
    pending: int
    in_flight: int
    batches_sent: int
    items_sent: int
    runs: int


@workflow.defn
class AmoBatcherWorkflow:
    @workflow.init
    def __init__(self, start: BatcherStart) -> None:
        self._state = start
        self._in_flight: set[str] = set()
        self._batches_in_flight = 0
        # The forms of the items in flight, one entry per item.
        self._forms_in_flight: Counter[str] = Counter()
        self._last_sent: datetime | None = None
        self._last_arrival = workflow.now()
        # When each form last had an item in a batch; only forms still busy are kept.
        self._form_sent: dict[str, datetime] = {}
        # When each pending request arrived (carried ones: when this run began).
        self._arrived = {request.request_id: workflow.now() for request in start.pending}
        self._failures = 0
        self._resume_at: datetime | None = None
        self._deliveries: list[asyncio.Task[None]] = []
        self._fills = False

    @workflow.run
    async def run(self, start: BatcherStart) -> None:
        self._fills = workflow.patched(FILL_PATCH)
        batches_this_run = 0
        while True:
            await workflow.wait_condition(self._may_send)
            await self._after_backoff()
            await self._linger()
            if not self._may_send():
                continue
            batch = self._state.splits.pop(0) if self._state.splits else self._take()
            label = self._mark_sent(batch)
            self._deliveries.append(asyncio.create_task(self._send(batch, label)))
            batches_this_run += 1
            if (
                batches_this_run >= BATCHES_PER_RUN
                or workflow.info().is_continue_as_new_suggested()
            ):
                await self._continue_as_new()

    @workflow.signal
    def submit(self, request: BatchRequest) -> None:
        request_id = request.request_id
        if request_id in self._in_flight or any(
            queued.request_id == request_id for split in self._state.splits for queued in split
        ):
            return  # its answer is on the way
        self._state.pending = [p for p in self._state.pending if p.request_id != request_id]
        self._state.pending.append(request)
        self._arrived[request_id] = self._last_arrival = workflow.now()

    @workflow.signal
    def configure(self, config: BatcherConfig) -> None:
        self._state.config = config

    @workflow.query
    def status(self) -> BatcherStatus:
        state = self._state
        return BatcherStatus(
            kind=state.kind,
            pending=len(state.pending) + sum(len(split) for split in state.splits),
            in_flight=len(self._in_flight),
            batches_sent=state.batches_sent,
            items_sent=state.items_sent,
            runs=state.runs,
        )

    # --- when and what -------------------------------------------------------

    def _may_send(self) -> bool:
        if self._state.splits:
            return self._batches_in_flight < MAX_BATCHES_IN_FLIGHT
        if not self._state.pending:
            return False
        return self._batches_in_flight == 0 or (
            self._batches_in_flight < MAX_BATCHES_IN_FLIGHT and self._go_now()
        )

    def _full(self) -> bool:
        return len(self._state.pending) >= self._max_items()

    async def _linger(self) -> None:
        """Idle, a request goes at once; busy, after the linger once the batch has filled
        (at most the longest linger), or at once when full, when a quiet form's item waits,
        or when the flow of new items has stopped."""
        while not (self._last_sent is None or self._state.splits or self._go_now()):
            last_sent = self._last_sent
            due = self._due(last_sent)
            remaining = (due - workflow.now()).total_seconds()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    functools.partial(self._sooner, last_sent, due), timeout=remaining
                )

    def _sooner(self, last_sent: datetime, due: datetime) -> bool:
        """Go now, or the batch became due sooner than `due` (its fill was reached)."""
        return self._go_now() or self._due(last_sent) < due

    def _go_now(self) -> bool:
        if self._full():
            return True
        if self._fills and self._idle():
            return True
        return any(self._form_quiet(p.form) for p in self._state.pending)

    def _idle(self) -> bool:
        """No batch in flight, and the oldest waiting item came a linger or more after the
        last batch."""
        if self._last_sent is None:
            return True
        if self._batches_in_flight:
            return False
        return self._oldest_arrival() - self._last_sent >= self._linger_time()

    def _form_quiet(self, form: str) -> bool:
        """No item of the form went in a batch lately, and none is in flight: its first one
        need not wait."""
        if self._fills and self._forms_in_flight[form] > 0:
            return False
        sent = self._form_sent.get(form)
        return sent is None or workflow.now() - sent >= self._form_memory()

    def _form_memory(self) -> timedelta:
        """How long a form counts as busy after its items went: the longest a batch waits."""
        if not self._fills:
            return self._linger_time()
        return max(self._linger_time(), timedelta(seconds=self._state.config.max_linger_seconds))

    def _due(self, last_sent: datetime) -> datetime:
        linger = self._linger_time()
        start = min(last_sent, self._oldest_arrival())
        if not self._fills:
            return min(start + linger, self._last_arrival + min(QUIET_BEFORE_FILL, linger))
        filled = len(self._state.pending) >= min(self._state.config.fill_items, self._max_items())
        stopped = self._last_arrival + FLOW_STOPPED[self._state.kind]
        return min(start + (linger if filled else self._form_memory()), stopped)

    def _oldest_arrival(self) -> datetime:
        """When the oldest waiting item arrived."""
        return min(self._arrived.get(p.request_id, workflow.now()) for p in self._state.pending)

    def _linger_time(self) -> timedelta:
        return timedelta(seconds=self._state.config.linger_seconds)

    async def _after_backoff(self) -> None:
        """After a 429 or 403 nothing goes until the backoff has passed."""
        if self._resume_at is not None:
            remaining = (self._resume_at - workflow.now()).total_seconds()
            if remaining > 0:
                await workflow.sleep(remaining)
            self._resume_at = None

    def _take(self) -> list[BatchRequest]:
        batch: list[BatchRequest] = []
        size = 0
        for request in _round_robin_by_form(self._state.pending):
            request_size = _size(request)
            if len(batch) >= self._max_items() or (batch and size + request_size > MAX_BATCH_BYTES):
                break
            batch.append(request)
            size += request_size
        taken = {request.request_id for request in batch}
        self._state.pending = [p for p in self._state.pending if p.request_id not in taken]
        for request_id in taken:
            self._arrived.pop(request_id, None)
        return batch

    def _max_items(self) -> int:
        return max(1, min(self._state.config.max_items, MAX_BATCH_ITEMS))

    # --- sending and answering -----------------------------------------------

    def _mark_sent(self, batch: list[BatchRequest]) -> str:
        """Counts the batch as sent; returns its label, `<batcher id>/<number>`."""
        self._in_flight |= {request.request_id for request in batch}
        self._batches_in_flight += 1
        self._forms_in_flight.update(request.form for request in batch)
        now = self._last_sent = workflow.now()
        self._form_sent = {
            form: sent for form, sent in self._form_sent.items() if now - sent < self._form_memory()
        }
        self._form_sent.update({request.form: now for request in batch})
        self._state.batches_sent += 1
        self._state.items_sent += len(batch)
        return f"{workflow.info().workflow_id}/{self._state.batches_sent}"

    async def _send(self, batch: list[BatchRequest], label: str) -> None:
        request_ids = {request.request_id for request in batch}
        try:
            answers = await self._write(batch, label)
            self._failures = 0
        except ActivityError as err:
            if failure_type(err) in AmoFailure.NOT_APPLIED:
                # amoCRM refused before doing anything: the items wait, then go again.
                self._state.pending[:0] = batch
                self._arrived.update({request_id: workflow.now() for request_id in request_ids})
                self._failures += 1
                self._resume_at = workflow.now() + write_backoff(err, self._failures)
                answers = []
            else:
                answers = self._after_failure(batch, err)
        finally:
            self._in_flight -= request_ids
            self._batches_in_flight -= 1
            self._forms_in_flight.subtract(request.form for request in batch)
        self._answer(batch, answers, label)

    async def _write(self, batch: list[BatchRequest], label: str) -> list[BatchAnswer]:
        if self._state.kind == BatchKind.CREATES:
            leads = [
                LeadToCreate(_written(r.lead), r.received_at, r.requester, r.traceparent)
                for r in batch
            ]
            created = await workflow.execute_activity_method(
                AmoBatchActivities.create_leads_batch,
                LeadsBatch(leads, label),
                **self._activity_options(priorities.PERSON_UNDER_WAY, f"create {len(batch)} leads"),
            )
            done = {lead.request_id: BatchAnswer("", Outcome.DONE, lead=lead) for lead in created}
        else:
            notes = [
                NoteToAdd(_written(r.note), r.received_at, r.requester, r.traceparent)
                for r in batch
            ]
            added = await workflow.execute_activity_method(
                AmoBatchActivities.add_notes_batch,
                NotesBatch(notes, label),
                **self._activity_options(priorities.KNOWN_LEAD, f"add {len(batch)} notes"),
            )
            done = {note.request_id: BatchAnswer("", Outcome.DONE, note=note) for note in added}
        answers = []
        for request in batch:
            answer = done.get(request.request_id)
            if answer is None:
                answer = BatchAnswer(
                    "", Outcome.UNKNOWN, message="amoCRM's answer did not name this request_id"
                )
            answer.request_id = request.request_id
            answers.append(answer)
        return answers

    def _activity_options(self, level: int, summary: str) -> dict[str, Any]:
        return {
            "task_queue": AMOCRM_TASK_QUEUE,
            "start_to_close_timeout": AMOCRM_ATTEMPT_TIMEOUT,
            "retry_policy": WRITE_ONCE,
            "priority": priorities.batch(level, self._state.kind),
            "summary": summary,
        }

    def _after_failure(self, batch: list[BatchRequest], err: ActivityError) -> list[BatchAnswer]:
        """Answers for the members; none when a refused batch is split to go again."""
        kind = failure_type(err)
        if kind == FailureKind.REJECTED and len(batch) > 1:
            self._state.splits[:0] = _split(batch, _rejected_items(err))
            return []
        outcome = Outcome.FAILED if kind in AmoFailure.NON_RETRYABLE else Outcome.UNKNOWN
        message = str(err.cause or err)
        details = _first_detail(err)
        return [
            BatchAnswer(
                request.request_id, outcome, failure_type=kind, message=message, details=details
            )
            for request in batch
        ]

    def _answer(self, batch: list[BatchRequest], answers: list[BatchAnswer], label: str) -> None:
        requesters = {request.request_id: request.requester for request in batch}
        self._deliveries = [task for task in self._deliveries if not task.done()]
        for answer in answers:
            answer.batch = label
            self._deliveries.append(
                asyncio.create_task(_deliver(requesters[answer.request_id], answer))
            )

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(lambda: self._batches_in_flight == 0)
        carried: list[BatchRequest] = []
        size = 0
        for request in self._state.pending:
            size += _size(request)
            if size > MAX_CARRIED_BYTES:
                answer = BatchAnswer(request.request_id, Outcome.RESEND)
                self._deliveries.append(asyncio.create_task(_deliver(request.requester, answer)))
            else:
                carried.append(request)
        self._state.pending = carried
        await asyncio.gather(*self._deliveries)
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._state.runs += 1
        workflow.continue_as_new(self._state)


async def _deliver(requester: str, answer: BatchAnswer) -> None:
    try:
        await workflow.get_external_workflow_handle(requester).signal(ANSWER_SIGNAL, answer)
    except FailureError as err:  # the requester has ended; nobody waits for this answer
        workflow.logger.warning("answer for %s not delivered: %s", answer.request_id, err)


def _written(item: NewLead | NewNote | None) -> Any:
    assert item is not None, "a request of this batcher's kind"
    return item


def _round_robin_by_form(pending: list[BatchRequest]) -> Iterator[BatchRequest]:
    queues: dict[str, list[BatchRequest]] = {}
    for request in pending:
        queues.setdefault(request.form, []).append(request)
    longest = max((len(queue) for queue in queues.values()), default=0)
    for turn in range(longest):
        for queue in queues.values():
            if turn < len(queue):
                yield queue[turn]


def _split(batch: list[BatchRequest], named: set[str]) -> list[list[BatchRequest]]:
    alone = [request for request in batch if request.request_id in named]
    rest = [request for request in batch if request.request_id not in named]
    if alone:
        return [[request] for request in alone] + ([rest] if rest else [])
    half = len(batch) // 2
    return [batch[:half], batch[half:]]


def _first_detail(err: ActivityError) -> dict[str, Any] | None:
    cause = err.cause
    details = cause.details if isinstance(cause, ApplicationError) else ()
    first = details[0] if details else None
    return first if isinstance(first, dict) else None


def _rejected_items(err: ActivityError) -> set[str]:
    named = (_first_detail(err) or {}).get("rejected_items")
    return {str(item) for item in named or []}


def _size(request: BatchRequest) -> int:
    return len(json.dumps(asdict(request), default=str))
