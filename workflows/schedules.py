"""leadrelay's Temporal Schedules, created or brought up to date at worker start:
reconciliation of lost webhooks, and the OAuth refresh token's keep-alive."""

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

from amocrm.credentials import oauth_app
from leadrelay.settings import WORKFLOW_TASK_QUEUE, Settings
from workflows.reconcile import ReconcileInput, ReconcileWorkflow
from workflows.token_keepalive import TokenKeepAliveInput, TokenKeepAliveWorkflow

RECONCILE_SCHEDULE_ID = "leadrelay-reconcile"
TOKEN_KEEPALIVE_SCHEDULE_ID = "leadrelay-token-keepalive"
KEEPALIVE_EVERY = timedelta(days=1)
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
    await ensure_schedule(client, RECONCILE_SCHEDULE_ID, reconcile_schedule(settings))


def token_keepalive_schedule(settings: Settings) -> Schedule:
    max_age = timedelta(days=settings.amocrm_token_keepalive_days)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            TokenKeepAliveWorkflow.run,
            TokenKeepAliveInput(max_age_seconds=max_age.total_seconds()),
            id="leadrelay-token-keepalive-run",
            task_queue=WORKFLOW_TASK_QUEUE,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=KEEPALIVE_EVERY)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_token_keepalive_schedule(client: Client, settings: Settings) -> None:
    """Only with OAuth in use: a long-lived token has nothing to keep alive."""
    if oauth_app(settings) is None:
        return
    await ensure_schedule(client, TOKEN_KEEPALIVE_SCHEDULE_ID, token_keepalive_schedule(settings))


async def ensure_schedule(client: Client, schedule_id: str, schedule: Schedule) -> None:
    """Create the schedule, or replace an existing one's definition with this one."""
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(replace)
