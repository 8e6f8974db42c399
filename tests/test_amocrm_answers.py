"""What real amoCRM accounts answer, end to end: deleted leads (204) and paged lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from leadrelay.events import Outcome
from tests.conftest import EXPRESS_PIPELINE, PROFTEST_PIPELINE, SANDBOX_TOKEN, WEBHOOK_TOKEN
from tests.support import Stack, eventually
from tests.test_pipeline import notes_of, wait_processed
from tests.test_webhooks import HOOK, entity_state
from workflows.lead import LeadWorkflow

AMO = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}


def phone_field(phone: str) -> list[dict[str, Any]]:
    return [{"field_code": "PHONE", "values": [{"value": phone, "enum_code": "MOB"}]}]


async def test_a_deleted_lead_is_recorded_and_its_lead_workflow_searches_again(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    phone = new_phone()
    body = {"name": "Ержан", "phone": phone, "paymentMethod": "kaspi"}
    await stack.api.post("/api/landing/express-course", json=body)
    view = await wait_processed(stack, phone, 1)
    deleted = view["amocrm_lead_id"]
    await eventually(lambda: _lead_workflow_knows(stack, phone, deleted))

    (await stack.sandbox.delete(f"/_sandbox/leads/{deleted}")).raise_for_status()
    assert (await stack.sandbox.get(f"/api/v4/leads/{deleted}", headers=AMO)).status_code == 204
    hook = (
        f"leads[status][0][id]={deleted}&leads[status][0][status_id]=142"
        f"&leads[status][0][pipeline_id]={EXPRESS_PIPELINE}&leads[status][0][last_modified]=1"
    )
    answer = await stack.api.post(
        f"/api/amocrm/{HOOK}",
        params={"token": WEBHOOK_TOKEN},
        content=hook,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200 and answer.json()["events"] == 1

    async def recorded_as_deleted() -> bool:
        try:
            state = await entity_state(stack, deleted)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return any(action.outcome == Outcome.LEAD_DELETED for action in state.actions)

    await eventually(recorded_as_deleted)
    await eventually(lambda: _lead_workflow_knows(stack, phone, None))

    again = {"name": "Ержан", "phone": phone, "paymentMethod": "card"}
    await stack.api.post("/api/landing/express-course", json=again)
    view = await wait_processed(stack, phone, 2)
    assert view["amocrm_lead_id"] not in (None, deleted)
    assert not any(r["path"].startswith("/api/v4/leads/notes") and r["status"] >= 400
                   for r in await stack.sandbox_requests())  # fmt: skip


async def _lead_workflow_knows(stack: Stack, phone: str, lead_id: int | None) -> bool:
    handle = stack.temporal.get_workflow_handle_for(LeadWorkflow.run, f"lead-{phone}")
    return (await handle.query(LeadWorkflow.state)).lead_id == lead_id


async def test_contact_search_and_lead_reads_follow_the_next_pages(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    """One contact per page and one lead per page: the open lead is on the last of each."""
    stack = clean_sandbox
    phone = new_phone()
    seeded = await stack.sandbox.post(
        "/_sandbox/contacts",
        json=[
            {"name": "Дубль без сделок", "custom_fields_values": phone_field(phone)},
            {"name": "Айгерим", "custom_fields_values": phone_field(phone)},
        ],
    )
    _, with_leads = seeded.json()["ids"]
    lead_ids = []
    for name in ("закрыта 1", "закрыта 2", "открыта"):
        created = await stack.sandbox.post(
            "/api/v4/leads",
            headers=AMO,
            json=[{"name": name, "pipeline_id": PROFTEST_PIPELINE,
                   "_embedded": {"contacts": [{"id": with_leads}]}}],
        )  # fmt: skip
        created.raise_for_status()
        lead_ids.append(created.json()["_embedded"]["leads"][0]["id"])
    for closed in lead_ids[:2]:
        moved = await stack.sandbox.post(
            f"/_sandbox/leads/{closed}/status", json={"status_id": 143, "emit_webhook": False}
        )
        moved.raise_for_status()
    await stack.set_faults(page_size=1)

    await stack.api.post("/api/landing/proftest", json={"name": "Айгерим", "phone": phone})
    view = await wait_processed(stack, phone, 1)

    state = await stack.sandbox_state()
    assert view["amocrm_lead_id"] == lead_ids[2], "the open lead on the last page was adopted"
    assert len(state["leads"]) == 3, "no new lead was created"
    assert len(notes_of(state, lead_ids[2])) == 1
    pages = [
        r for r in await stack.sandbox_requests() if r["method"] == "GET" and r["status"] == 200
    ]
    assert sum("page=3" in r["query"] for r in pages) == 1  # the leads; contacts end at 2
    assert sum("page=2" in r["query"] for r in pages) == 2
