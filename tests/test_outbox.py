"""With Temporal down, forms and webhooks are still answered, kept in the outbox, and
land once Temporal is back: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from amocrm.client import AmoClient
from api.app import create_app as create_api
from api.outbox import Kind, NewEntry, Outbox, OutboxDrainer, OutboxEntry
from leadrelay.settings import Settings
from sandbox.server import serve_in_thread
from tests.conftest import SANDBOX_TOKEN, WEBHOOK_TOKEN
from tests.support import DevServer, Stack, eventually
from tests.test_pipeline import contacts_of, leads_of
from tests.test_webhooks import forwards_for, new_express_lead
from worker import create_workers


async def test_outbox_survives_reopen_and_keeps_order(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    await asyncio.gather(
        *(outbox.append([NewEntry(Kind.SUBMISSION, f"lead-{n}", {"n": n})]) for n in range(50))
    )
    await outbox.append([NewEntry(Kind.SUBMISSION, "lead-x", {"n": 50})])
    outbox.close()
    reopened = Outbox(path)
    assert reopened.depth == 51
    assert [entry.payload["n"] for entry in await reopened.oldest(100)] == list(range(51))
    reopened.close()


async def test_stored_kinds_read_back_as_the_enum(tmp_path: Path) -> None:
    """The file keeps each kind as its plain string, so files written by any release read."""
    path = tmp_path / "outbox.sqlite3"
    Outbox(path).close()
    with sqlite3.connect(path) as db:
        for kind in ("submission", "entity-event", "raw-webhook"):
            db.execute(
                "INSERT INTO outbox (created_at, kind, workflow_id, payload) "
                "VALUES (0, ?, ?, '{}')",
                (kind, f"wf-{kind}"),
            )
            db.execute(
                "INSERT INTO dead_letters (created_at, dead_at, kind, workflow_id, payload, "
                "attempts, error) VALUES (0, 0, ?, ?, '{}', 1, 'refused')",
                (kind, f"wf-{kind}"),
            )
    db.close()
    outbox = Outbox(path)
    assert [entry.kind for entry in await outbox.oldest(10)] == list(Kind)
    assert [letter.kind for letter in await outbox.list_dead()] == list(Kind)
    outbox.close()


async def test_drainer_holds_back_only_the_failing_workflow(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    await outbox.append(
        [NewEntry(Kind.SUBMISSION, wf, {"n": n}) for n, wf in enumerate(["a", "b", "a", "b"])]
    )
    delivered: list[int] = []

    async def deliver(entry: OutboxEntry) -> None:
        if entry.workflow_id == "a":
            raise RuntimeError("Temporal said no")
        delivered.append(entry.payload["n"])

    assert await OutboxDrainer(outbox, deliver).drain_once() == 2
    assert delivered == [1, 3]
    assert [(e.payload["n"], e.attempts) for e in await outbox.oldest(10)] == [(0, 1), (2, 0)]
    outbox.close()


@pytest.fixture
async def own_temporal(
    tmp_path: Path, stack: Stack
) -> AsyncIterator[tuple[DevServer, Settings, httpx.AsyncClient]]:
    """Its own dev server, worker and API, so stopping Temporal leaves the rest alone."""
    server = DevServer(tmp_path / "temporal.db")
    await server.start()
    settings = stack.settings.model_copy(
        update={
            "temporal_address": server.address,
            "leadrelay_outbox_path": tmp_path / "outbox.sqlite3",
        }
    )
    async with AsyncExitStack() as exits:
        exits.push_async_callback(server.stop)
        client = await Client.connect(server.address)
        executor = exits.enter_context(ThreadPoolExecutor(max_workers=2))
        http = await exits.enter_async_context(httpx.AsyncClient(timeout=10))
        amo = await exits.enter_async_context(
            AmoClient(
                str(settings.amocrm_base_url),
                SANDBOX_TOKEN,
                requests_per_second=settings.amocrm_rps,
            )
        )
        for worker in create_workers(client, settings, amo, http, executor):
            await exits.enter_async_context(worker)
        api_url = exits.enter_context(serve_in_thread(create_api(settings)))
        api = await exits.enter_async_context(httpx.AsyncClient(base_url=api_url, timeout=30))
        yield server, settings, api


def status_webhook(lead_id: int, last_modified: int) -> dict[str, str]:
    return {
        "leads[status][0][id]": str(lead_id),
        "leads[status][0][status_id]": "142",
        "leads[status][0][pipeline_id]": "6344290",
        "leads[status][0][old_status_id]": "54435014",
        "leads[status][0][last_modified]": str(last_modified),
        "account[subdomain]": "schoolkz",
    }


async def test_forms_and_webhooks_survive_temporal_being_down(
    clean_sandbox: Stack,
    own_temporal: tuple[DevServer, Settings, httpx.AsyncClient],
    new_phone: Callable[[], str],
) -> None:
    stack = clean_sandbox
    server, _, api = own_temporal
    lead_id = await new_express_lead(stack, new_phone())
    moved = await stack.sandbox.post(
        f"/_sandbox/leads/{lead_id}/status", json={"status_id": 142, "emit_webhook": False}
    )
    moved.raise_for_status()
    hook = status_webhook(lead_id, last_modified=1_800_000_000)
    phones = [new_phone() for _ in range(6)]

    async def submit(phone: str) -> dict[str, Any]:
        response = await api.post("/api/landing/proftest", json={"phone": phone})
        assert response.status_code == 202, response.text
        return response.json()

    assert (await submit(phones[0]))["delivered_via"] == "temporal"
    await server.stop()

    down = [await submit(phone) for phone in [*phones[1:], phones[1]]]
    assert {answer["delivered_via"] for answer in down} == {"outbox"}
    for _ in range(2):
        response = await api.post(
            "/api/amocrm/funnel-sale", params={"token": WEBHOOK_TOKEN}, data=hook
        )
        assert response.status_code == 200 and response.json()["delivered_via"] == "outbox"
    live = await api.get("/healthz")
    assert live.status_code == 200 and live.json()["outbox_depth"] == 8
    assert live.json()["outbox_oldest_age_seconds"] > 0
    ready = await api.get("/readyz", headers=stack.admin_headers)
    assert ready.status_code == 200, "the outbox takes over while Temporal is away"
    assert ready.json()["via"] == "outbox"
    assert ready.json()["temporal"]["error"]
    anonymous = await api.get("/readyz")
    assert anonymous.status_code == 200 and "error" not in anonymous.text

    await server.start()

    async def drained() -> bool:
        return (await api.get("/healthz")).json()["outbox_depth"] == 0

    async def landed() -> bool:
        state = await stack.sandbox_state()
        return all(len(leads_of(state, phone[1:])) == 1 for phone in phones) and bool(
            forwards_for(stack, lead_id)
        )

    await eventually(drained, within=90)
    await eventually(landed, within=90)
    await asyncio.sleep(2)  # room for a duplicate to show up, if there were one
    state = await stack.sandbox_state()
    for phone in phones:
        assert len(contacts_of(state, phone[1:])) == 1
        assert len(leads_of(state, phone[1:])) == 1
    assert len(forwards_for(stack, lead_id)) == 1
