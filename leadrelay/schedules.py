"""The reconciliation schedule, created or brought up to date at worker start."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from leadrelay.settings import WORKFLOW_TASK_QUEUE, Settings
from workflows.reconcile import ReconcileInput, ReconcileWorkflow

RECONCILE_SCHEDULE_ID = "leadrelay-reconcile"
# Windows overlap, so a change near a boundary or during a missed run is still read.
LOOKBACK_FACTOR = 3


def reconcile_schedule(settings: Settings) -> Schedule:
    every = timedelta(seconds=settings.reconcile_every_seconds)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcileWorkflow.run,
            ReconcileInput(lookback_seconds=every.total_seconds() * LOOKBACK_FACTOR),
            id="leadrelay-reconcile-run",
            task_queue=WORKFLOW_TASK_QUEUE,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_reconcile_schedule(client: Client, settings: Settings) -> None:
    schedule = reconcile_schedule(settings)
    try:
        await client.create_schedule(RECONCILE_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(RECONCILE_SCHEDULE_ID).update(replace)
