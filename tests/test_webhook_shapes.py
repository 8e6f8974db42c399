"""Webhook items whose entity id is not their top-level id, over real HTTP: chat messages
(counted, acted on only when a rule asks) and notes, routed to the lead they are about."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlencode

import pytest
from temporalio.service import RPCError, RPCStatusCode

from leadrelay.events import entity_workflow_id
from tests.conftest import SANDBOX_TOKEN, WEBHOOK_TOKEN
from tests.support import Stack, eventually
from tests.test_pipeline import notes_of
from tests.test_webhooks import HOOK, new_express_lead

CHAT_RULE = """
[[rules]]
name = "chat-note"
action = "message"
actions = [{ type = "note", text = "Клиент написал в чат" }]
"""


def chat_message(lead_id: int, message_id: str) -> bytes:
    return urlencode(
        {
            "account[subdomain]": "school",
            "message[add][0][id]": message_id,
            "message[add][0][chat_id]": "54caee02-e383-46d8-a9b7-1fb43f07cffe",
            "message[add][0][talk_id]": "100",
            "message[add][0][text]": "Есть места?",
            "message[add][0][entity_type]": "lead",
            "message[add][0][entity_id]": str(lead_id),
            "message[add][0][type]": "incoming",
        }
    ).encode()


async def post_hook(stack: Stack, body: bytes) -> dict[str, object]:
    response = await stack.api.post(
        f"/api/amocrm/{HOOK}",
        params={"token": WEBHOOK_TOKEN},
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    answer: dict[str, object] = response.json()
    return answer


async def workflow_exists(stack: Stack, workflow_id: str) -> bool:
    try:
        await stack.temporal.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


@pytest.fixture
async def chat_rule(stack: Stack) -> AsyncIterator[Callable[[], None]]:
    def add() -> None:
        stack.forms_path.write_text(stack.forms_text + CHAT_RULE, encoding="utf-8")

    yield add
    await asyncio.to_thread(stack.forms_path.write_text, stack.forms_text, encoding="utf-8")


async def test_chat_messages_are_counted_without_a_workflow_unless_a_rule_asks(
    clean_sandbox: Stack, new_phone: Callable[[], str], chat_rule: Callable[[], None]
) -> None:
    stack = clean_sandbox
    lead_id = await new_express_lead(stack, new_phone())

    answer = await post_hook(stack, chat_message(lead_id, "a0ce13c7-4825-4ecc-9dc0-b35c49b86db4"))
    assert answer == {**answer, "events": 0, "chat_messages": 1, "kept_raw": False}
    await asyncio.sleep(1)
    assert not await workflow_exists(stack, entity_workflow_id("leads", lead_id))
    metrics = (await stack.api.get("/metrics")).text
    assert f'leadrelay_chat_messages_total{{hook="{HOOK}",outcome="counted"}}' in metrics

    await asyncio.to_thread(chat_rule)
    answer = await post_hook(stack, chat_message(lead_id, "b1df24d8-4825-4ecc-9dc0-b35c49b86db4"))
    assert answer == {**answer, "events": 1, "chat_messages": 1, "kept_raw": False}

    async def noted() -> bool:
        notes = notes_of(await stack.sandbox_state(), lead_id)
        return any(note.startswith("Клиент написал в чат") for note in notes)

    await eventually(noted)


async def test_a_lead_note_webhook_reaches_the_leads_entity_workflow(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    lead_id = await new_express_lead(stack, new_phone())
    body = urlencode(
        {
            "leads[note][0][note][id]": "60864725",
            "leads[note][0][note][note_type]": "4",
            "leads[note][0][note][text]": "Перезвонить",
            "leads[note][0][note][element_id]": str(lead_id),
            "leads[note][0][note][element_type]": "2",
        }
    ).encode()

    answer = await post_hook(stack, body)

    assert answer == {**answer, "events": 1, "kept_raw": False, "problems": []}
    workflow_id = entity_workflow_id("leads", lead_id)
    await eventually(lambda: workflow_exists(stack, workflow_id))


async def test_the_sandbox_sends_note_webhooks_in_amocrms_shape(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    url = f"{stack.api_url}/api/amocrm/{HOOK}?token={WEBHOOK_TOKEN}"
    subscribed = await stack.sandbox.post(
        "/_sandbox/webhooks", json={"url": url, "events": ["note"]}
    )
    subscribed.raise_for_status()
    lead_id = await new_express_lead(stack, new_phone())
    added = await stack.sandbox.post(
        f"/api/v4/leads/{lead_id}/notes",
        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
        json=[{"note_type": "common", "params": {"text": "Менеджер позвонил"}}],
    )
    added.raise_for_status()

    async def delivered() -> bool:
        deliveries = (await stack.sandbox.get("/_sandbox/webhooks/deliveries")).json()
        return any("leads%5Bnote%5D" in d["body"] and d["status_code"] == 200 for d in deliveries)

    await eventually(delivered)
    [delivery] = (await stack.sandbox.get("/_sandbox/webhooks/deliveries")).json()
    assert f"leads%5Bnote%5D%5B0%5D%5Bnote%5D%5Belement_id%5D={lead_id}" in delivery["body"]
    await eventually(lambda: workflow_exists(stack, entity_workflow_id("leads", lead_id)))
