"""Webhooks get lost: every few minutes, read amoCRM's status-change events and feed
them into the same entity workflows, where a change already handled is dropped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.amocrm import AmoActivities, EventsWindow
    from activities.delivery import DeliveryActivities
    from leadrelay.settings import IO_TASK_QUEUE
    from workflows import priorities
    from workflows.amocrm_calls import call_amocrm


@dataclass
class ReconcileInput:
    lookback_seconds: float


@workflow.defn
class ReconcileWorkflow:
    @workflow.run
    async def run(self, request: ReconcileInput) -> int:
        window = EventsWindow(int(workflow.now().timestamp() - request.lookback_seconds))
        found = 0
        while True:
            page = await call_amocrm(
                AmoActivities.read_status_events,
                window,
                summary=f"read events p.{window.page}",
                priority=priorities.BACKGROUND_READS,
            )
            if page.events:
                await workflow.execute_activity_method(
                    DeliveryActivities.deliver_entity_events,
                    page.events,
                    task_queue=IO_TASK_QUEUE,
                    start_to_close_timeout=timedelta(seconds=60),
                    summary=f"deliver {len(page.events)} events",
                )
            found += len(page.events)
            if not page.has_next:
                return found
            window = EventsWindow(window.created_from, window.page + 1)
