"""Every amoCRM activity carries the documented priority and fairness key (README, "Batching
and priorities"; workflows/priorities.py), read from the histories of real workflows."""

from __future__ import annotations

from collections.abc import Callable

from temporalio.api.enums.v1 import EventType
from temporalio.client import ScheduleOverlapPolicy

from leadrelay.events import entity_workflow_id
from leadrelay.settings import AMOCRM_TASK_QUEUE
from tests.support import Stack, eventually
from tests.test_pipeline import wait_processed
from tests.test_webhooks import move_lead, new_express_lead, subscribe_hook, wait_handled
from workflows.batcher import BATCHER_IDS, BatchKind
from workflows.schedules import RECONCILE_SCHEDULE_ID

Key = tuple[int, str]
"""(priority key, fairness key); (0, "") is Temporal's default."""

FORM = "proftest"
# README's table: 1 a new person under way, 2 a new person's first search, 3 known leads,
# 4 webhook rule actions, 5 background reads.
LEAD_ACTIVITIES: set[tuple[str, Key]] = {
    ("amocrm.search_contacts_page", (2, f"form:{FORM}")),  # the phone: a new person's first
    ("amocrm.search_contacts_page", (1, f"form:{FORM}")),  # the email, after the phone missed
    ("amocrm.read_leads_page", (3, f"form:{FORM}")),  # the known lead, on the second visit
}
BATCH_ACTIVITIES: dict[BatchKind, dict[str, Key]] = {
    BatchKind.CREATES: {"amocrm.create_leads_batch": (1, "batch:creates")},
    BatchKind.NOTES: {"amocrm.add_notes_batch": (3, "batch:notes")},
}
RULE_ACTIVITIES: dict[str, Key] = {
    "amocrm.read_current_lead": (4, "webhooks"),
    "amocrm.add_lead_note": (4, "webhooks"),
    "amocrm.add_lead_task": (4, "webhooks"),
}
RECONCILE_ACTIVITIES: dict[str, Key] = {"amocrm.read_status_events": (5, "background")}
CATALOGUE_ACTIVITIES: dict[str, Key] = {"amocrm.read_field_catalogue_page": (5, "background")}


async def amocrm_activities(
    stack: Stack, workflow_id: str, run_id: str = ""
) -> set[tuple[str, Key]]:
    """(activity type, key) of every activity the workflow scheduled on the amoCRM queue."""
    handle = stack.temporal.get_workflow_handle(workflow_id, run_id=run_id or None)
    found = set()
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        scheduled = event.activity_task_scheduled_event_attributes
        if scheduled.task_queue.name == AMOCRM_TASK_QUEUE:
            priority = scheduled.priority
            found.add(
                (scheduled.activity_type.name, (priority.priority_key, priority.fairness_key))
            )
    return found


async def test_each_amocrm_activity_has_its_documented_priority(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    phone = new_phone()
    # A new person (phone search, email search, create), then again (read the known lead).
    for count, comment in ((1, "first"), (2, "again")):
        body = {"phone": phone, "email": f"p{phone}@example.org", "comment": comment}
        await stack.api.post(f"/api/landing/{FORM}", json=body)
        await wait_processed(stack, phone, count)
    assert await amocrm_activities(stack, f"lead-{phone}") == LEAD_ACTIVITIES
    started = await stack.temporal.get_workflow_handle(f"lead-{phone}").fetch_history()
    own = started.events[0].workflow_execution_started_event_attributes.priority
    assert (own.priority_key, own.fairness_key) == (0, f"form:{FORM}"), "fair between forms"

    for kind, expected in BATCH_ACTIVITIES.items():
        assert await amocrm_activities(stack, BATCHER_IDS[kind]) == set(expected.items())

    # A webhook whose rules re-read the lead, then add a note and a task.
    await subscribe_hook(stack)
    lead_id = await new_express_lead(stack, new_phone())
    await move_lead(stack, lead_id, 142)
    await wait_handled(stack, lead_id, seen=1)
    entity = entity_workflow_id("leads", lead_id)
    assert await amocrm_activities(stack, entity) == set(RULE_ACTIVITIES.items())

    query = "WorkflowType='ReconcileWorkflow'"
    before = {run.run_id async for run in stack.temporal.list_workflows(query)}
    schedule = stack.temporal.get_schedule_handle(RECONCILE_SCHEDULE_ID)
    await schedule.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    new_runs: list[tuple[str, str]] = []

    async def reconciled() -> bool:
        new_runs[:] = [
            (run.id, run.run_id)
            async for run in stack.temporal.list_workflows(
                f"{query} AND ExecutionStatus!='Running'"
            )
            if run.run_id not in before
        ]
        return bool(new_runs)

    await eventually(reconciled)
    for workflow_id, run_id in new_runs:
        assert await amocrm_activities(stack, workflow_id, run_id) == set(
            RECONCILE_ACTIVITIES.items()
        )
