"""Workflow logic that depends on time, on Temporal's time-skipping test server.

The quiet window, continue-as-new, parking, webhook memory and the reconcile window take
minutes or hours of workflow time; here the server skips that time, so each test takes
seconds. amoCRM and the delivery activities are doubles registered under the real
activity names, so the workflows run unchanged. The real-stack tests prove that the parts
work together; these prove the timing logic, which is hard to reach there.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    WorkflowHandle,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.amocrm import (
    ContactSearch,
    ContactsPage,
    CurrentLead,
    EventsPage,
    EventsWindow,
    LeadNote,
    LeadsPage,
    LeadsRead,
    LeadTags,
)
from activities.fields import FieldCatalogueCache
from amocrm.models import Contact, CreatedLead, Lead, LeadChange, NewLead
from leadrelay.contact import lead_workflow_id
from leadrelay.events import EntityEvent, EntityState, ForwardRequest
from leadrelay.forms import FormsFile
from leadrelay.models import LeadStart, LeadState, Step, Submission
from leadrelay.settings import AMOCRM_TASK_QUEUE, IO_TASK_QUEUE, WORKFLOW_TASK_QUEUE, Settings
from tests.time_skipping import forms_file, time_skipping_env
from worker import workflow_worker
from workflows.amocrm_entity import AmoEntityWorkflow
from workflows.lead import LeadWorkflow
from workflows.reconcile import ReconcileInput, ReconcileWorkflow
from workflows.schedules import LOOKBACK_FACTOR, reconcile_schedule
from workflows.starts import deliver_entity_event, deliver_submission

PIPELINE = 10350882
STATUS = 81854578
SALE = 142
LOST = 143
FORMS_TOML = f"""
[forms.proftest]
pipeline_id = {PIPELINE}
status_id = {STATUS}
tags = ["proftest"]
lead_name = "Профтест: {{name}}"

[[rules]]
name = "sale"
pipeline_id = {PIPELINE}
status_id = {SALE}
actions = [{{ type = "forward", url = "http://receiver.invalid/events", allow_unsigned = true }}]

[[rules]]
name = "lost"
pipeline_id = {PIPELINE}
status_id = {LOST}
actions = [{{ type = "note", text = "Сделка проиграна" }}]
"""
REJECTED = ApplicationError("400: pipeline_id", type="AmoRejected", non_retryable=True)


@dataclass
class AmoDouble:
    """amoCRM as the activities see it: contacts, leads, notes, and scripted refusals."""

    contacts: list[Contact] = field(default_factory=list)
    leads: dict[int, Lead] = field(default_factory=dict)
    notes: list[LeadNote] = field(default_factory=list)
    creates: list[NewLead] = field(default_factory=list)
    searches: int = 0
    # Submission ids (the create's request_id) whose create amoCRM refuses with a 400.
    refuse_creates_of: set[str] = field(default_factory=set)
    # Lead ids whose notes amoCRM refuses with a 400.
    refuse_notes_on: set[int] = field(default_factory=set)
    forwards: list[ForwardRequest] = field(default_factory=list)
    windows: list[EventsWindow] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(30_000_001))

    @activity.defn(name="amocrm.search_contacts_page")
    async def search_contacts_page(self, search: ContactSearch) -> ContactsPage:
        self.searches += 1
        phone = search.query.phone
        return ContactsPage([c for c in self.contacts if phone in c.phones], next_page=None)

    @activity.defn(name="amocrm.read_leads_page")
    async def read_leads_page(self, read: LeadsRead) -> LeadsPage:
        return LeadsPage([self.leads[i] for i in read.lead_ids if i in self.leads], None)

    @activity.defn(name="amocrm.create_lead")
    async def create_lead(self, new: NewLead) -> CreatedLead:
        self.creates.append(new)
        if new.request_id in self.refuse_creates_of:
            raise REJECTED
        lead = Lead(
            next(self._ids), new.name, new.status_id or STATUS, new.pipeline_id or 0, new.tags
        )
        self.leads[lead.id] = lead
        contact_id = new.contact_id
        if contact_id is None:
            assert new.new_contact is not None
            contact_id = next(self._ids)
            phones = [new.new_contact.phone] if new.new_contact.phone else []
            self.contacts.append(Contact(contact_id, "", phones=phones, lead_ids=[lead.id]))
        return CreatedLead(lead.id, contact_id, merged=False, request_id=new.request_id)

    @activity.defn(name="amocrm.add_lead_note")
    async def add_lead_note(self, note: LeadNote) -> None:
        self.notes.append(note)
        if note.lead_id in self.refuse_notes_on:
            raise REJECTED

    @activity.defn(name="amocrm.add_lead_tags")
    async def add_lead_tags(self, request: LeadTags) -> None:
        self.leads[request.lead_id].tags.extend(request.tags)

    @activity.defn(name="amocrm.update_lead")
    async def update_lead(self, change: LeadChange) -> None:
        self.leads[change.lead_id].tags.extend(change.tags_to_add)

    @activity.defn(name="amocrm.read_current_lead")
    async def read_current_lead(self, lead_id: int) -> CurrentLead | None:
        lead = self.leads.get(lead_id)
        return None if lead is None else CurrentLead(lead, {"id": lead.id})

    @activity.defn(name="amocrm.read_status_events")
    async def read_status_events(self, window: EventsWindow) -> EventsPage:
        self.windows.append(window)
        return EventsPage(events=[], has_next=False)

    @activity.defn(name="leadrelay.forward_event")
    async def forward_event(self, request: ForwardRequest) -> int:
        self.forwards.append(request)
        return 200

    @activity.defn(name="leadrelay.deliver_entity_events")
    async def deliver_entity_events(self, events: list[EntityEvent]) -> None:
        return None

    def amocrm_activities(self) -> list[object]:
        return [
            self.search_contacts_page,
            self.read_leads_page,
            self.create_lead,
            self.add_lead_note,
            self.add_lead_tags,
            self.update_lead,
            self.read_current_lead,
            self.read_status_events,
        ]


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_env() as environment:
        yield environment


@pytest.fixture
def forms(tmp_path: Path) -> FormsFile:
    return forms_file(tmp_path, FORMS_TOML)


@asynccontextmanager
async def workers(client: Client, amo: AmoDouble, forms: FormsFile) -> AsyncIterator[None]:
    with ThreadPoolExecutor(max_workers=2) as executor:
        async with (
            workflow_worker(client, forms, FieldCatalogueCache(ttl_seconds=3600), executor),
            Worker(client, task_queue=AMOCRM_TASK_QUEUE, activities=amo.amocrm_activities()),
            Worker(
                client,
                task_queue=IO_TASK_QUEUE,
                activities=[amo.forward_event, amo.deliver_entity_events],
            ),
        ):
            yield


def settings(**overrides: float) -> Settings:
    return Settings().model_copy(update=overrides)


def new_phone() -> str:
    return f"+7702{uuid.uuid4().int % 10_000_000:07d}"


def submission(phone: str, name: str = "Айгерим") -> Submission:
    return Submission(
        submission_id=uuid.uuid4().hex, form="proftest", received_at="t", name=name, phone=phone
    )


async def lead_when(
    env: WorkflowEnvironment, workflow_id: str, check: Callable[[LeadState], bool]
) -> LeadState:
    """Polls the `state` query (polling does not skip time) until `check` holds."""
    handle = env.client.get_workflow_handle_for(LeadWorkflow.run, workflow_id)
    return await _when(lambda: handle.query(LeadWorkflow.state), check)


async def entity_when(
    env: WorkflowEnvironment, workflow_id: str, check: Callable[[EntityState], bool]
) -> EntityState:
    handle = env.client.get_workflow_handle_for(AmoEntityWorkflow.run, workflow_id)
    return await _when(lambda: handle.query(AmoEntityWorkflow.state), check)


async def current_run(env: WorkflowEnvironment, workflow_id: str) -> WorkflowHandle[Any, Any]:
    """A handle on the entity workflow's run that is current now, not on a later one."""
    described = await env.client.get_workflow_handle(workflow_id).describe()
    return env.client.get_workflow_handle(
        workflow_id, run_id=described.run_id, result_type=EntityState
    )


async def result_of(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> Any:
    """The run's result, skipping time meanwhile (only handles from `start_workflow` skip
    time by themselves)."""
    async with env.time_skipping_unlocked():
        return await handle.result()


async def _when(read: Callable[[], Any], check: Callable[[Any], bool]) -> Any:
    for _ in range(600):
        state = await read()
        if check(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"the condition never held; last state {state}")


# --- lead workflow ---------------------------------------------------------------------


async def test_a_submission_within_the_quiet_window_updates_the_known_lead(
    env: WorkflowEnvironment, forms: FormsFile
) -> None:
    """Within the window a later submission is noted on the lead the workflow knows (no
    second search); after the window the workflow completes."""
    amo, phone = AmoDouble(), new_phone()
    quiet = settings(leadrelay_quiet_window_seconds=3600)
    async with workers(env.client, amo, forms):
        handle = await deliver_submission(env.client, quiet, phone, submission(phone))
        await lead_when(env, handle.id, lambda s: s.submissions_processed == 1)
        started = await env.get_current_time()
        await env.sleep(timedelta(minutes=50))
        await deliver_submission(env.client, quiet, phone, submission(phone, "Вторая"))
        final = await handle.result()
        finished = await env.get_current_time()

    assert final.submissions_processed == 2 and final.step == Step.DONE
    assert len(amo.creates) == 1 and amo.searches == 1
    assert [note.lead_id for note in amo.notes] == [final.lead_id] * 2
    # The window restarts with each submission: done an hour after the second one.
    assert finished - started >= timedelta(minutes=50) + timedelta(hours=1)


async def test_continue_as_new_carries_the_pending_submissions(
    env: WorkflowEnvironment, forms: FormsFile
) -> None:
    amo, phone = AmoDouble(), new_phone()
    submissions = [submission(phone, f"Заявка {n}") for n in range(5)]
    quiet = settings(leadrelay_quiet_window_seconds=60)
    # All five wait before any worker runs, so runs end with submissions still pending.
    handle = await env.client.start_workflow(
        LeadWorkflow.run,
        LeadStart(phone, quiet.leadrelay_quiet_window_seconds, submissions_per_run=2),
        id=lead_workflow_id(phone),
        task_queue=WORKFLOW_TASK_QUEUE,
        start_signal="submit",
        start_signal_args=[submissions[0]],
    )
    for later in submissions[1:]:
        await handle.signal(LeadWorkflow.submit, later)
    async with workers(env.client, amo, forms):
        final = await handle.result()

    assert final.runs == 3, "2 + 2 + 1 submissions: two continue-as-new"
    assert final.submissions_processed == 5 and final.pending == []
    assert final.processed_ids == [s.submission_id for s in submissions]
    assert len(amo.creates) == 1 and len(amo.notes) == 5


async def test_a_parked_submission_is_retried_then_skipped_and_the_next_goes_on(
    env: WorkflowEnvironment, forms: FormsFile
) -> None:
    amo, phone = AmoDouble(), new_phone()
    broken, fine = submission(phone, "Сломанная"), submission(phone, "Следующая")
    amo.refuse_creates_of = {broken.submission_id[:32]}
    quiet = settings(leadrelay_quiet_window_seconds=60)
    async with workers(env.client, amo, forms):
        handle = await deliver_submission(env.client, quiet, phone, broken)
        await deliver_submission(env.client, quiet, phone, fine)
        parked = await lead_when(env, handle.id, lambda s: s.step == Step.FAILED)
        assert parked.last_error is not None and parked.last_error.kind == "AmoRejected"
        # A day parked costs nothing: no retry storm while the operator is away.
        await env.sleep(timedelta(days=1))
        assert len(amo.creates) == 1

        await handle.signal(LeadWorkflow.retry)
        await lead_when(env, handle.id, lambda s: s.step == Step.FAILED and len(amo.creates) == 2)
        await handle.signal(LeadWorkflow.skip)
        await lead_when(env, handle.id, lambda s: s.submissions_processed == 1)
        details = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        final = await handle.result()

    assert final.submissions_skipped == 1 and final.submissions_processed == 1
    [skipped] = final.skipped
    assert skipped.submission.submission_id == broken.submission_id
    assert skipped.error is not None and skipped.error.kind == "AmoRejected"
    assert [c.request_id for c in amo.creates] == [
        broken.submission_id[:32],
        broken.submission_id[:32],
        fine.submission_id[:32],
    ]
    assert "**skipped** 1" in details.current_details


# --- entity workflow -------------------------------------------------------------------


def sale_event(lead_id: int, last_modified: int, status_id: int = SALE) -> EntityEvent:
    return EntityEvent(
        dedup_key=f"leads:{lead_id}:status:{status_id}:{last_modified}",
        source="webhook:funnel-sale",
        entity="leads",
        action="status",
        entity_id=lead_id,
        status_id=status_id,
        pipeline_id=PIPELINE,
        last_modified=last_modified,
    )


async def test_webhook_memory_drops_late_duplicates_until_it_expires(
    env: WorkflowEnvironment, forms: FormsFile
) -> None:
    amo = AmoDouble()
    lead_id = 25_000_000 + uuid.uuid4().int % 1_000_000
    amo.leads[lead_id] = Lead(lead_id, "Продажа", SALE, PIPELINE)
    memory = settings(webhook_memory_seconds=24 * 3600)
    event = sale_event(lead_id, last_modified=1_760_000_000)
    async with workers(env.client, amo, forms):
        await deliver_entity_event(env.client, memory, event)
        first = await current_run(env, event.workflow_id)
        await entity_when(env, event.workflow_id, lambda s: s.events_handled == 1)
        await env.sleep(timedelta(hours=23))
        await deliver_entity_event(env.client, memory, event)
        remembered = await result_of(env, first)
        # Past the memory, amoCRM's redelivery of the same change starts a new workflow.
        await deliver_entity_event(env.client, memory, event)
        second = await current_run(env, event.workflow_id)
        forgotten = await result_of(env, second)

    assert second.run_id != first.run_id

    assert remembered.duplicates_dropped == 1 and remembered.events_handled == 1
    assert forgotten.events_handled == 1 and forgotten.duplicates_dropped == 0
    assert len(amo.forwards) == 2


async def test_a_parked_event_is_retried_then_skipped_and_the_next_goes_on(
    env: WorkflowEnvironment, forms: FormsFile
) -> None:
    amo = AmoDouble()
    lead_id = 26_000_000 + uuid.uuid4().int % 1_000_000
    amo.leads[lead_id] = Lead(lead_id, "Проигрыш", LOST, PIPELINE)
    amo.refuse_notes_on = {lead_id}
    memory = settings(webhook_memory_seconds=3600)
    lost = sale_event(lead_id, last_modified=1_760_000_000, status_id=LOST)
    async with workers(env.client, amo, forms):
        await deliver_entity_event(env.client, memory, lost)
        await entity_when(env, lost.workflow_id, lambda s: any(
            a.outcome.startswith("failed (AmoRejected)") for a in s.actions
        ))  # fmt: skip
        handle = await current_run(env, lost.workflow_id)
        await env.sleep(timedelta(days=1))
        assert len(amo.notes) == 1, "parked: no retries while the operator is away"

        await handle.signal(AmoEntityWorkflow.retry)
        await entity_when(env, lost.workflow_id, lambda s: len(amo.notes) == 2 and sum(
            a.outcome.startswith("failed") for a in s.actions
        ) == 2)  # fmt: skip
        amo.leads[lead_id].status_id = SALE
        await deliver_entity_event(env.client, memory, sale_event(lead_id, 1_760_000_100))
        await handle.signal(AmoEntityWorkflow.skip)
        final = await result_of(env, handle)

    assert final.events_skipped == 1 and final.events_handled == 1
    assert [event.dedup_key for event in final.skipped] == [lost.dedup_key]
    assert len(amo.forwards) == 1, "the next event (a sale) went on after the skip"


# --- reconciliation ----------------------------------------------------------------------


async def test_reconcile_runs_read_overlapping_windows(
    env: WorkflowEnvironment, forms: FormsFile
) -> None:
    """The schedule starts a run every `RECONCILE_EVERY_SECONDS` that reads LOOKBACK_FACTOR
    intervals back, so consecutive windows overlap and a change near a boundary is read."""
    every = 300
    schedule = reconcile_schedule(settings(reconcile_every_seconds=every))
    assert isinstance(schedule.action, ScheduleActionStartWorkflow)
    [interval] = schedule.spec.intervals
    assert isinstance(interval, ScheduleIntervalSpec)
    assert interval.every == timedelta(seconds=every)
    [request] = schedule.action.args
    assert isinstance(request, ReconcileInput)
    assert request.lookback_seconds == every * LOOKBACK_FACTOR

    amo = AmoDouble()
    starts = []
    # Runs exactly `every` apart, as the schedule starts them: time moves only by env.sleep.
    with env.auto_time_skipping_disabled():
        async with workers(env.client, amo, forms):
            for _ in range(2):
                starts.append(int((await env.get_current_time()).timestamp()))
                await env.client.execute_workflow(
                    ReconcileWorkflow.run,
                    request,
                    id=f"reconcile-{uuid.uuid4().hex}",
                    task_queue=WORKFLOW_TASK_QUEUE,
                )
                await env.sleep(timedelta(seconds=every))

    first, second = (window.created_from for window in amo.windows)
    for start, created_from in zip(starts, (first, second), strict=True):
        assert abs(start - every * LOOKBACK_FACTOR - created_from) <= 2
    assert second < starts[0], "the second run reads back past the first run's start"
