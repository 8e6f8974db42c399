"""The one place that knows how to reach Temporal and hand it leads and events.

Every delivery here is signal-with-start and safe to repeat: the workflows drop a
submission id or an event key they have seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from temporalio.client import Client, Interceptor, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.runtime import Runtime

from leadrelay.contact import lead_workflow_id
from leadrelay.events import EntityEvent, EntityStart, RawWebhook
from leadrelay.models import LeadStart, LeadState, Submission
from leadrelay.settings import WORKFLOW_TASK_QUEUE, Settings
from leadrelay.temporal_tls import api_key, tls_config

# Workflows are named, not imported: activities deliver through this module, and the
# workflows import those activities.
LEAD_WORKFLOW = "LeadWorkflow"
ENTITY_WORKFLOW = "AmoEntityWorkflow"
RAW_WEBHOOK_WORKFLOW = "RawWebhookWorkflow"


async def connect(
    settings: Settings,
    *,
    lazy: bool = False,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """Every process connects here, so TLS, mTLS and API keys apply to all of them.

    `lazy` lets the API start while Temporal is down; its outbox covers the gap.
    `runtime` carries the worker's metrics; None is the SDK's default runtime.
    `interceptors` (tracing) also apply to every worker built on this client."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=tls_config(settings),
        api_key=api_key(settings),
        lazy=lazy,
        runtime=runtime,
        interceptors=interceptors,
    )


async def deliver_submission(
    client: Client, settings: Settings, lead_key: str, submission: Submission
) -> WorkflowHandle:
    """Returns once the server has durably recorded the submission."""
    return await client.start_workflow(
        LEAD_WORKFLOW,
        LeadStart(lead_key, settings.leadrelay_quiet_window_seconds),
        result_type=LeadState,
        id=lead_workflow_id(lead_key),
        task_queue=WORKFLOW_TASK_QUEUE,
        start_signal="submit",
        start_signal_args=[submission],
        static_summary=f"Lead {lead_key}",
    )


async def deliver_entity_event(client: Client, settings: Settings, event: EntityEvent) -> None:
    await client.start_workflow(
        ENTITY_WORKFLOW,
        EntityStart(event.entity, event.entity_id, settings.webhook_memory_seconds),
        id=event.workflow_id,
        task_queue=WORKFLOW_TASK_QUEUE,
        start_signal="event",
        start_signal_args=[event],
        static_summary=f"amoCRM {event.entity} {event.entity_id}",
    )


def raw_webhook_workflow_id(raw: RawWebhook) -> str:
    digest = hashlib.sha256(f"{raw.hook}\n{raw.body_base64}".encode()).hexdigest()
    return f"amocrm-raw-{digest[:20]}"


async def deliver_raw_webhook(client: Client, raw: RawWebhook) -> None:
    """The same body twice is one workflow: the id is a digest of the hook and the body."""
    await client.start_workflow(
        RAW_WEBHOOK_WORKFLOW,
        raw,
        id=raw_webhook_workflow_id(raw),
        task_queue=WORKFLOW_TASK_QUEUE,
        static_summary=f"Unparsed webhook for hook {raw.hook!r}",
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
