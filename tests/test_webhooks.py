"""amoCRM webhooks: answered fast, never lost, each status change acted on once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from temporalio.client import ScheduleOverlapPolicy, WorkflowQueryFailedError
from temporalio.service import RPCError

from api.app import create_app as create_api
from leadrelay.events import entity_workflow_id
from leadrelay.signing import verify_signature
from sandbox.server import serve_in_thread
from tests.conftest import EXPRESS_PIPELINE, FORWARD_SECRET, SANDBOX_TOKEN, WEBHOOK_TOKEN
from tests.support import Stack, eventually
from tests.test_pipeline import notes_of
from workflows.amocrm_entity import AmoEntityWorkflow
from workflows.raw_webhook import RawWebhookWorkflow
from workflows.schedules import RECONCILE_SCHEDULE_ID

HOOK = "funnel-sale"


async def new_express_lead(stack: Stack, phone: str) -> int:
    """A lead in the express-course pipeline, made through the sandbox's own API."""
    response = await stack.sandbox.post(
        "/api/v4/leads/complex",
        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
        json=[
            {
                "name": "Экспресс-курс",
                "pipeline_id": EXPRESS_PIPELINE,
                "_embedded": {"contacts": [{"first_name": "Ержан", "custom_fields_values": [
                    {"field_code": "PHONE", "values": [{"value": phone, "enum_code": "MOB"}]}
                ]}]},
            }
        ],
    )  # fmt: skip
    response.raise_for_status()
    return int(response.json()[0]["id"])


async def subscribe_hook(stack: Stack, api_url: str | None = None) -> None:
    url = f"{api_url or stack.api_url}/api/amocrm/{HOOK}?token={WEBHOOK_TOKEN}"
    response = await stack.sandbox.post("/_sandbox/webhooks", json={"url": url})
    response.raise_for_status()


async def move_lead(stack: Stack, lead_id: int, status_id: int, *, emit: bool = True) -> None:
    response = await stack.sandbox.post(
        f"/_sandbox/leads/{lead_id}/status", json={"status_id": status_id, "emit_webhook": emit}
    )
    response.raise_for_status()


def forwards_for(stack: Stack, lead_id: int) -> list[dict[str, Any]]:
    return [body for body in stack.receiver.json_bodies() if body["event"]["entity_id"] == lead_id]


async def entity_state(stack: Stack, lead_id: int) -> Any:
    handle = stack.temporal.get_workflow_handle(entity_workflow_id("leads", lead_id))
    return await handle.query(AmoEntityWorkflow.state)


async def wait_entity(stack: Stack, lead_id: int, until: Callable[[Any], bool]) -> Any:
    """The entity workflow's state once `until(state)` holds; a workflow not started yet, or
    a query meeting a workflow task being retried, is waited out."""

    async def entity_state_met() -> bool:
        try:
            return until(await entity_state(stack, lead_id))
        except (RPCError, WorkflowQueryFailedError):
            return False

    await eventually(entity_state_met)
    return await entity_state(stack, lead_id)


async def wait_handled(stack: Stack, lead_id: int, seen: int) -> Any:
    return await wait_entity(
        stack, lead_id, lambda state: state.events_seen >= seen and not state.pending
    )


async def test_status_change_forwards_once_despite_redeliveries_and_restarts(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    await subscribe_hook(stack)
    lead_id = await new_express_lead(stack, new_phone())
    await move_lead(stack, lead_id, 142)

    async def forwarded() -> bool:
        return len(forwards_for(stack, lead_id)) == 1

    await eventually(forwarded)
    [forward] = [r for r in stack.receiver.received if f'"entity_id": {lead_id}' in r.body.decode()]
    signature = forward.headers["x-leadrelay-signature"]
    assert verify_signature(FORWARD_SECRET, signature, forward.body, now=time.time())
    body = forwards_for(stack, lead_id)[0]
    assert body["rule"] == "express-sale"
    assert body["lead"]["status_id"] == 142 and body["lead"]["_embedded"]["contacts"]

    deliveries = (await stack.sandbox.get("/_sandbox/webhooks/deliveries")).json()
    ours = len(deliveries) - 1
    await stack.sandbox.post("/_sandbox/webhooks/redeliver", json={"index": ours})
    await stack.restart_workers()
    with serve_in_thread(create_api(stack.settings)) as restarted_api:
        await subscribe_hook(stack, restarted_api)
        await stack.sandbox.post("/_sandbox/webhooks/redeliver", json={"index": ours})
        await stack.sandbox.post("/_sandbox/webhooks/redeliver", json={"index": ours})
        state = await wait_handled(stack, lead_id, seen=4)

    assert state.duplicates_dropped == 3
    assert len(forwards_for(stack, lead_id)) == 1
    [note] = notes_of(await stack.sandbox_state(), lead_id)
    assert note.startswith("Продажа передана в академию · id "), note


def tasks_of(state: dict[str, Any], lead_id: int) -> list[str]:
    return [t["text"] for t in state["tasks"] if t["entity_id"] == lead_id]


async def test_a_rule_note_and_task_whose_answers_were_lost_are_written_once(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    await subscribe_hook(stack)
    lead_id = await new_express_lead(stack, new_phone())
    # Every write is applied and its answer lost: a blind retry would add a note each time.
    await stack.set_faults(lost_answer_rate=1.0)
    await move_lead(stack, lead_id, 142)
    state = await wait_handled(stack, lead_id, seen=1)
    await stack.set_faults()

    assert [(a.action, a.outcome) for a in state.actions if a.action in ("note", "task")] == [
        ("note", "done"),
        ("task", "done"),
    ]
    sandbox = await stack.sandbox_state()
    [note] = notes_of(sandbox, lead_id)
    assert note.startswith("Продажа передана в академию · id "), note
    [task] = tasks_of(sandbox, lead_id)
    assert task.startswith("Поздравить с покупкой · id "), task
    lost = [
        r["path"] for r in await stack.sandbox_requests()
        if r["method"] == "POST" and r["status"] == 504
    ]  # fmt: skip
    assert any(path.endswith("/notes") for path in lost), "the note's answer really was lost"
    assert any(path.endswith("/tasks") for path in lost), "the task's answer really was lost"


async def test_two_real_changes_are_both_handled(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    await subscribe_hook(stack)
    lead_id = await new_express_lead(stack, new_phone())
    # Seconds apart, as a manager would: each change is re-read before it is acted on,
    # and one undone before that is recorded as not confirmed instead.
    for seen, status in enumerate((142, 54423923, 142), start=1):
        await move_lead(stack, lead_id, status)
        state = await wait_handled(stack, lead_id, seen=seen)
    assert state.events_handled == 3 and state.duplicates_dropped == 0
    assert len(forwards_for(stack, lead_id)) == 2


async def test_a_lost_webhook_is_found_by_reconciliation_and_forwarded_once(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    lead_id = await new_express_lead(stack, new_phone())
    await move_lead(stack, lead_id, 142, emit=False)
    schedule = stack.temporal.get_schedule_handle(RECONCILE_SCHEDULE_ID)
    await schedule.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)

    async def forwarded() -> bool:
        return len(forwards_for(stack, lead_id)) >= 1

    await eventually(forwarded)
    await schedule.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    state = await wait_handled(stack, lead_id, seen=2)
    assert state.duplicates_dropped == 1, "the second run found the same change"
    assert len(forwards_for(stack, lead_id)) == 1
    assert forwards_for(stack, lead_id)[0]["event"]["source"] == "reconciliation"


async def test_garbage_gets_2xx_and_is_kept_for_replay(stack: Stack) -> None:
    garbage = b"\xff\xfe leads[status][0][id=\x00\x01" + b"[" * 5000
    response = await stack.api.post(
        f"/api/amocrm/{HOOK}",
        params={"token": WEBHOOK_TOKEN},
        content=garbage,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.json()["kept_raw"] is True

    raw_ids = [
        wf.id async for wf in stack.temporal.list_workflows("WorkflowType='RawWebhookWorkflow'")
    ]
    assert raw_ids, "the raw body is kept in a workflow an operator can find"
    handle = stack.temporal.get_workflow_handle(raw_ids[0])
    await handle.signal(RawWebhookWorkflow.reparse)

    async def reparsed() -> bool:
        return (await handle.query(RawWebhookWorkflow.status))["reparses"] >= 1

    await eventually(reparsed)


@pytest.mark.parametrize("token", ["", "wrong"])
async def test_wrong_token_is_401(stack: Stack, token: str) -> None:
    response = await stack.api.post(
        f"/api/amocrm/{HOOK}", params={"token": token}, content=b"leads[status][0][id]=1"
    )
    assert response.status_code == 401


async def test_empty_and_unknown_bodies_get_2xx(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url) as client:
        for body in (b"", b"task[update][0][id]=5&account[id]=1", b'{"unknown": {"x": 1}}'):
            response = await client.post(
                f"/api/amocrm/{HOOK}", params={"token": WEBHOOK_TOKEN}, content=body
            )
            assert response.status_code == 200, body
