"""The leadrelay worker: lead workflows, and amoCRM activities on the rate-limited queue.

Run it as `python worker.py`; it reads the same environment as the API.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import timedelta

import httpx
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.amocrm import AmoActivities
from activities.amocrm_batches import AmoBatchActivities
from activities.delivery import DeliveryActivities
from activities.fields import FieldActivities, FieldCatalogueCache
from activities.routing import RoutingActivities
from activities.token_keepalive import TokenKeepAliveActivities
from amocrm.client import AmoClient
from amocrm.credentials import token_source
from leadrelay.custom_fields import CatalogueRequest
from leadrelay.events import EntityEvent
from leadrelay.forms import FormsConfig, FormsFile
from leadrelay.forms_check import check_forms
from leadrelay.logs import configure_logging
from leadrelay.settings import AMOCRM_TASK_QUEUE, IO_TASK_QUEUE, WORKFLOW_TASK_QUEUE, Settings
from leadrelay.telemetry import publish_rps_budget, worker_runtime
from leadrelay.temporal import connect
from leadrelay.tracing import Tracing
from workflows.account_check import (
    ACCOUNT_CHECK_WORKFLOW_ID,
    AccountCheckWorkflow,
    AccountRead,
)
from workflows.catalog import WORKFLOWS
from workflows.runner import workflow_runner
from workflows.schedules import ensure_reconcile_schedule, ensure_token_keepalive_schedule
from workflows.starts import deliver_entity_event, ensure_batchers, resync_leads_of

FORWARD_TIMEOUT_SECONDS = 20.0
# The start-up check gives up after this; amoCRM may be down for longer than a worker waits.
ACCOUNT_CHECK_TIMEOUT = timedelta(hours=1)


def amo_client(settings: Settings, tracing: Tracing | None = None) -> AmoClient:
    if not settings.amocrm_base_url:
        raise SystemExit("AMOCRM_BASE_URL must be set (make run starts the sandbox)")
    return AmoClient(
        settings.amocrm_base_url,
        token_source(settings),
        # The server holds all workers to AMOCRM_RPS over time; each worker's pacer keeps
        # its share of every single second, which the server's token bucket does not.
        requests_per_second=settings.amocrm_rps / settings.amocrm_workers,
        timeout=settings.amocrm_timeout_seconds,
        block_backoff=settings.amocrm_block_backoff_seconds,
        transport=tracing.http_transport("amocrm") if tracing else None,
    )


def create_workers(
    client: Client,
    settings: Settings,
    amo: AmoClient,
    http: httpx.AsyncClient,
    executor: ThreadPoolExecutor,
    catalogues: FieldCatalogueCache | None = None,
) -> list[Worker]:
    forms = FormsFile(settings.leadrelay_forms)
    catalogues = catalogues or FieldCatalogueCache(settings.leadrelay_field_catalogue_ttl_seconds)
    amocrm = AmoActivities(amo, phone_region=settings.leadrelay_phone_region)

    async def deliver_event(event: EntityEvent) -> None:
        await deliver_entity_event(client, settings, event)

    async def resync_leads(lead_id: int) -> int:
        return await resync_leads_of(client, lead_id)

    delivery = DeliveryActivities(settings, http, deliver_event, resync_leads)
    batches = AmoBatchActivities(amo)
    keepalive = TokenKeepAliveActivities(amo)
    io_worker = Worker(
        client,
        task_queue=IO_TASK_QUEUE,
        activities=[
            delivery.forward_event,
            delivery.redeliver_raw_webhook,
            delivery.deliver_entity_events,
            delivery.announce_lead_deleted,
        ],
    )
    # Every worker on this queue must set the same limit: the last poller's value wins.
    amocrm_worker = Worker(
        client,
        task_queue=AMOCRM_TASK_QUEUE,
        activities=[
            amocrm.search_contacts,
            amocrm.search_contacts_page,
            amocrm.create_lead,
            amocrm.read_leads,
            amocrm.read_leads_page,
            amocrm.add_lead_tags,
            amocrm.update_lead,
            amocrm.add_contact_phone,
            amocrm.read_field_catalogue,
            amocrm.read_field_catalogue_page,
            amocrm.read_pipelines,
            amocrm.read_users_page,
            amocrm.add_lead_note,
            amocrm.main_pipeline_id,
            amocrm.read_current_lead,
            amocrm.lead_has_note,
            amocrm.lead_has_task,
            amocrm.add_lead_task,
            amocrm.read_status_events,
            batches.create_leads_batch,
            batches.add_notes_batch,
            keepalive.keep_token_alive,
        ],
        max_task_queue_activities_per_second=settings.amocrm_rps,
        max_concurrent_activities=amocrm_tasks_in_hand(settings),
    )
    return [workflow_worker(client, forms, catalogues, executor), amocrm_worker, io_worker]


def workflow_worker(
    client: Client, forms: FormsFile, catalogues: FieldCatalogueCache, executor: ThreadPoolExecutor
) -> Worker:
    """Every workflow, and the local activities they run: routing and field conversion."""
    routing = RoutingActivities(forms)
    fields = FieldActivities(forms, catalogues)
    return Worker(
        client,
        task_queue=WORKFLOW_TASK_QUEUE,
        workflows=WORKFLOWS,
        workflow_runner=workflow_runner(),
        activities=[routing.route_submission, routing.plan_actions, fields.prepare_fields],
        activity_executor=executor,
    )


def amocrm_tasks_in_hand(settings: Settings) -> int:
    """How many amoCRM tasks this worker takes from the queue at once: about one second of
    its budget. Tasks in hand wait for the pacer in arrival order; only those still on the
    server are handed out by priority and fairness key, so the fewer in hand, the sooner a
    batch or a priority call goes out behind a burst of searches."""
    return max(2, math.ceil(settings.amocrm_rps / settings.amocrm_workers))


async def check_forms_against_account(
    client: Client, forms: FormsFile, catalogues: FieldCatalogueCache
) -> None:
    """Log what the forms file names that the account lacks; never stop the worker over it.

    The reads run as `AccountCheckWorkflow`, on the amoCRM queue and its rate limit. The
    catalogues they return fill the worker's cache, so the first leads need not read them.
    """
    try:
        config = forms.current()
        wanted = [
            CatalogueRequest(entity, field_ids)
            for entity, field_ids in config.mapped_field_ids().items()
            if field_ids
        ]
        snapshot = await client.execute_workflow(
            AccountCheckWorkflow.run,
            AccountRead(wanted),
            id=ACCOUNT_CHECK_WORKFLOW_ID,
            task_queue=WORKFLOW_TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            execution_timeout=ACCOUNT_CHECK_TIMEOUT,
        )
        problems = check_forms(config, snapshot.facts())
    except (WorkflowFailureError, RPCError, OSError, ValueError) as err:
        logging.warning("forms file not checked against amoCRM: %s", err.__cause__ or err)
        return
    for catalogue in snapshot.catalogues:
        catalogues.install(catalogue)
    for problem in problems:
        logging.warning("forms file: %s", problem)
    if not problems:
        logging.info("forms file matches the amoCRM account")


def refuse_unsigned_forwards(settings: Settings) -> None:
    """A `forward` rule needs FORWARD_SIGNING_SECRET, unless it says `allow_unsigned`."""
    unsigned = FormsConfig.load(settings.leadrelay_forms).unsigned_forwards()
    if unsigned and not settings.forward_signing_secret:
        raise SystemExit(
            f"forward rules {', '.join(unsigned)} would send unsigned events: set "
            "FORWARD_SIGNING_SECRET, or add allow_unsigned = true to the forward action"
        )


async def main() -> None:
    settings = Settings()
    configure_logging(settings.leadrelay_log_level)
    refuse_unsigned_forwards(settings)
    tracing = Tracing.from_environment("leadrelay-worker")
    runtime = worker_runtime(settings.leadrelay_worker_metrics_address)
    publish_rps_budget(runtime, settings.amocrm_rps)
    client = await connect(
        settings,
        runtime=runtime,
        interceptors=tracing.temporal_interceptors(),
    )
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with (
            AsyncExitStack() as running,
            amo_client(settings, tracing) as amo,
            httpx.AsyncClient(
                timeout=FORWARD_TIMEOUT_SECONDS, transport=tracing.http_transport("forward")
            ) as http,
        ):
            catalogues = FieldCatalogueCache(settings.leadrelay_field_catalogue_ttl_seconds)
            for worker in create_workers(client, settings, amo, http, executor, catalogues):
                await running.enter_async_context(worker)
            forms = FormsFile(settings.leadrelay_forms)
            startup_check = asyncio.create_task(
                check_forms_against_account(client, forms, catalogues)
            )
            logging.info(
                "worker polling %s, %s and %s (amoCRM limit %.1f req/s)",
                WORKFLOW_TASK_QUEUE,
                AMOCRM_TASK_QUEUE,
                IO_TASK_QUEUE,
                settings.amocrm_rps,
            )
            await ensure_reconcile_schedule(client, settings)
            await ensure_token_keepalive_schedule(client, settings)
            await ensure_batchers(client, settings)
            await stop.wait()
            startup_check.cancel()
            logging.info("shutting down: finishing the tasks in hand")
    tracing.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
