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
# README's table: 1 new people, 2 known leads, 3 webhook rule actions, 4 background reads.
LEAD_ACTIVITIES: dict[str, Key] = {
    "amocrm.search_contacts_page": (1, f"form:{FORM}"),
    "amocrm.read_leads_page": (2, f"form:{FORM}"),
}
BATCH_ACTIVITIES: dict[BatchKind, dict[str, Key]] = {
    BatchKind.CREATES: {"amocrm.create_leads_batch": (1, "batch:creates")},
    BatchKind.NOTES: {"amocrm.add_notes_batch": (2, "batch:notes")},
}
RULE_ACTIVITIES: dict[str, Key] = {
    "amocrm.read_current_lead": (3, "webhooks"),
    "amocrm.add_lead_note": (3, "webhooks"),
    "amocrm.add_lead_task": (3, "webhooks"),
}
RECONCILE_ACTIVITIES: dict[str, Key] = {"amocrm.read_status_events": (4, "background")}
CATALOGUE_ACTIVITIES: dict[str, Key] = {"amocrm.read_field_catalogue_page": (4, "background")}


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
    # A new person (search, create), then the same person again (read the known lead).
    for count, comment in ((1, "first"), (2, "again")):
        await stack.api.post(f"/api/landing/{FORM}", json={"phone": phone, "comment": comment})
        await wait_processed(stack, phone, count)
    assert await amocrm_activities(stack, f"lead-{phone}") == set(LEAD_ACTIVITIES.items())
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
