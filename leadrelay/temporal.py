"""The one place that knows how to reach Temporal and start a lead workflow."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle

from leadrelay.contact import lead_workflow_id
from leadrelay.models import LeadStart, Submission
from leadrelay.settings import WORKFLOW_TASK_QUEUE, Settings
from workflows.lead import LeadWorkflow


async def connect(settings: Settings) -> Client:
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)


async def deliver_submission(
    client: Client, settings: Settings, lead_key: str, submission: Submission
) -> WorkflowHandle:
    """Signal-with-start: returns once the server has durably recorded the submission."""
    return await client.start_workflow(
        LeadWorkflow.run,
        LeadStart(lead_key, settings.leadrelay_quiet_window_seconds),
        id=lead_workflow_id(lead_key),
        task_queue=WORKFLOW_TASK_QUEUE,
        start_signal="submit",
        start_signal_args=[submission],
        static_summary=f"Lead {lead_key}",
    )
