"""A leadrelay deployment of its own inside the session's Temporal dev server.

Tests of connections and tracing run their own clients, workers and API, built exactly as
the real processes build them. A namespace of their own keeps the session's workers away
from their tasks, so what they observe was done by the processes under test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx
from fastapi import FastAPI
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client, Interceptor
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from amocrm.client import AmoClient
from leadrelay.models import LeadState, Step
from leadrelay.settings import Settings
from leadrelay.temporal import connect
from sandbox.server import serve_in_thread
from tests.conftest import SANDBOX_TOKEN
from tests.support import eventually
from worker import create_workers
from workflows.lead import LeadWorkflow
from workflows.starts import ensure_batchers

DONE_STEPS = (Step.CREATED, Step.UPDATED, Step.DONE)


async def register_namespace(env: WorkflowEnvironment, namespace: str) -> None:
    """On the dev server a new namespace is usable at once."""
    retention = Duration()
    retention.FromTimedelta(timedelta(days=1))
    await env.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=retention)
    )


@dataclass
class Deployment:
    client: Client
    api: httpx.AsyncClient

    async def lead_done(self, workflow_id: str) -> LeadState:
        handle = self.client.get_workflow_handle_for(LeadWorkflow.run, workflow_id)
        states: list[LeadState] = []

        async def lead_in_amocrm() -> bool:
            try:
                states.append(await handle.query(LeadWorkflow.state))
            except RPCError as err:  # the outbox may not have delivered it yet
                if err.status == RPCStatusCode.NOT_FOUND:
                    return False
                raise
            return states[-1].step in DONE_STEPS and states[-1].lead_id is not None

        await eventually(lead_in_amocrm, within=60)
        return states[-1]


@asynccontextmanager
async def deployment(
    settings: Settings,
    app: FastAPI,
    *,
    interceptors: Sequence[Interceptor] = (),
    amo_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Deployment]:
    """Workers on a client from `connect(settings)`, and `app` served over HTTP."""
    assert settings.amocrm_base_url
    async with AsyncExitStack() as exits:
        client = await connect(settings, interceptors=interceptors)
        executor = exits.enter_context(ThreadPoolExecutor(max_workers=2))
        http = await exits.enter_async_context(httpx.AsyncClient(timeout=10))
        amo = await exits.enter_async_context(
            AmoClient(
                settings.amocrm_base_url,
                SANDBOX_TOKEN,
                requests_per_second=settings.amocrm_rps,
                transport=amo_transport,
            )
        )
        for worker in create_workers(client, settings, amo, http, executor):
            await exits.enter_async_context(worker)
        await ensure_batchers(client, settings)
        api_url = exits.enter_context(serve_in_thread(app))
        api = await exits.enter_async_context(httpx.AsyncClient(base_url=api_url, timeout=30))

        async def api_reaches_temporal() -> bool:
            return (await api.get("/healthz")).status_code == 200

        await eventually(api_reaches_temporal, within=30)
        yield Deployment(client, api)
