"""Client-side starts: handing leads and events to their workflows.

Every delivery here is signal-with-start and safe to repeat: the workflows drop a
submission id or an event key they have seen. Workflows are referred to by their typed
run methods, so a rename fails at import time.
"""

from __future__ import annotations

import hashlib

from temporalio.client import Client, WorkflowHandle
from temporalio.common import Priority, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from leadrelay.contact import lead_workflow_id
from leadrelay.events import EntityEvent, EntityStart, RawWebhook
from leadrelay.models import LeadStart, LeadState, Submission
from leadrelay.settings import WORKFLOW_TASK_QUEUE, Settings
from workflows import priorities
from workflows.amocrm_entity import AmoEntityWorkflow
from workflows.batcher import (
    BATCHER_IDS,
    AmoBatcherWorkflow,
    BatcherConfig,
    BatcherStart,
    BatchKind,
)
from workflows.lead import LeadWorkflow
from workflows.raw_webhook import RawWebhookWorkflow


async def deliver_submission(
    client: Client, settings: Settings, lead_key: str, submission: Submission
) -> WorkflowHandle[LeadWorkflow, LeadState]:
    """Returns once the server has durably recorded the submission."""
    return await client.start_workflow(
        LeadWorkflow.run,
        LeadStart(lead_key, settings.leadrelay_quiet_window_seconds),
        id=lead_workflow_id(lead_key),
        task_queue=WORKFLOW_TASK_QUEUE,
        start_signal="submit",
        start_signal_args=[submission],
        static_summary=f"Lead {lead_key}",
        # Its workflow tasks are handed out fairly by form too, so that a flood of bots on
        # one form does not queue another form's visitors behind every bot's first task.
        priority=priorities.workflow_of_form(submission.form),
    )


async def deliver_entity_event(client: Client, settings: Settings, event: EntityEvent) -> None:
    await client.start_workflow(
        AmoEntityWorkflow.run,
        EntityStart(event.entity, event.entity_id, settings.webhook_memory_seconds),
        id=event.workflow_id,
        task_queue=WORKFLOW_TASK_QUEUE,
        start_signal="event",
        start_signal_args=[event],
        static_summary=f"amoCRM {event.entity} {event.entity_id}",
    )


async def resync_leads_of(client: Client, lead_id: int) -> int:
    """Signals `resync` to every running lead workflow that knows this amoCRM lead (by the
    `AmoLeadId` search attribute), e.g. after the lead was deleted; how many."""
    query = f'AmoLeadId="{lead_id}" AND ExecutionStatus="Running"'
    told = 0
    async for execution in client.list_workflows(query):
        handle = client.get_workflow_handle(execution.id)
        try:
            await handle.signal(LeadWorkflow.resync)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:  # it completed meanwhile: nothing to do
                raise
            continue
        told += 1
    return told


def raw_webhook_workflow_id(raw: RawWebhook) -> str:
    digest = hashlib.sha256(f"{raw.hook}\n{raw.body_base64}".encode()).hexdigest()
    return f"amocrm-raw-{digest[:20]}"


async def deliver_raw_webhook(client: Client, raw: RawWebhook) -> None:
    """The same body twice is one workflow: the id is a digest of the hook and the body."""
    await client.start_workflow(
        RawWebhookWorkflow.run,
        raw,
        id=raw_webhook_workflow_id(raw),
        task_queue=WORKFLOW_TASK_QUEUE,
        static_summary=f"Unparsed webhook for hook {raw.hook!r}",
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


# Ahead of the lead workflows' tasks on the workflow queue: a batch answers many of them.
BATCHER_PRIORITY = Priority(priority_key=1)


async def ensure_batchers(client: Client, settings: Settings) -> None:
    """Signal-with-start each batcher: a running one keeps its state and takes the config."""
    config = BatcherConfig(
        linger_seconds=settings.leadrelay_batch_linger_seconds,
        max_items=settings.leadrelay_batch_max_items,
        fill_items=settings.leadrelay_batch_fill_items,
        max_linger_seconds=settings.leadrelay_batch_max_linger_seconds,
    )
    for kind in BatchKind:
        await client.start_workflow(
            AmoBatcherWorkflow.run,
            BatcherStart(kind, config),
            id=BATCHER_IDS[kind],
            task_queue=WORKFLOW_TASK_QUEUE,
            start_signal="configure",
            start_signal_args=[config],
            static_summary=f"amoCRM batcher: {kind}",
            priority=BATCHER_PRIORITY,
        )
