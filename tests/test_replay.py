"""Recorded histories must replay against the current workflow code.

A change that would break running workflows fails here; make deliberate changes with
`workflow.patched`. Record after adding a scenario:
`LEADRELAY_RECORD_HISTORIES=1 .venv/bin/pytest tests/test_replay.py`. Recording writes only
histories that are not there yet: a history recorded with older code is the point of the
test, so it is never overwritten (delete a file to record it afresh).
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import ScheduleOverlapPolicy

from activities.fields import FieldCatalogueCache
from api.intake import build_submission
from cli.replay import load_history, replay
from leadrelay.events import RawWebhook, entity_workflow_id
from leadrelay.forms import FormsFile
from tests.conftest import WEBHOOK_TOKEN
from tests.support import Stack
from tests.test_faults import wait_all_processed
from tests.test_lead_fields import COURSE_FIELD_ID, FIELDS_FORMS, email_of
from tests.test_pipeline import PROFTEST_BODY, wait_processed
from tests.test_webhooks import move_lead, new_express_lead, subscribe_hook, wait_handled
from worker import check_forms_against_account
from workflows.account_check import ACCOUNT_CHECK_WORKFLOW_ID
from workflows.amocrm_entity import AmoEntityWorkflow
from workflows.batcher import BATCHER_IDS, BatchKind
from workflows.catalog import WORKFLOWS
from workflows.lead import LeadWorkflow
from workflows.raw_webhook import RawWebhookWorkflow
from workflows.schedules import RECONCILE_SCHEDULE_ID
from workflows.starts import deliver_submission, raw_webhook_workflow_id

HISTORIES = Path(__file__).parent / "histories"
RECORDING = os.environ.get("LEADRELAY_RECORD_HISTORIES") == "1"


def recorded_histories() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def test_every_workflow_type_has_recorded_histories() -> None:
    recorded = {load_history(path).events[0].workflow_execution_started_event_attributes
                .workflow_type.name for path in recorded_histories()}  # fmt: skip
    assert recorded == {workflow.__name__ for workflow in WORKFLOWS}


@pytest.mark.parametrize("path", recorded_histories(), ids=lambda path: path.stem)
async def test_recorded_history_replays(path: Path) -> None:
    assert await replay([path]) == 0, f"{path.name} no longer replays against this code"


@pytest.mark.skipif(not RECORDING, reason="set LEADRELAY_RECORD_HISTORIES=1 to re-record")
async def test_record_histories(clean_sandbox: Stack, new_phone: Callable[[], str]) -> None:
    stack = clean_sandbox
    recorded: dict[str, str] = {}  # file name -> workflow id

    new_person = new_phone()
    await stack.api.post("/api/landing/proftest", json={**PROFTEST_BODY, "phone": new_person})
    await wait_processed(stack, new_person, 1)
    recorded["lead-new-person"] = f"lead-{new_person}"

    repeat = new_phone()
    for method in ("kaspi", "card", "card"):
        body = {"name": "Ержан", "phone": repeat, "paymentMethod": method}
        await stack.api.post("/api/landing/express-course", json=body)
        await asyncio.sleep(0.5)
    await wait_processed(stack, repeat, 2)
    handle = stack.temporal.get_workflow_handle(f"lead-{repeat}")
    await handle.signal(LeadWorkflow.add_note, "Перезвонить после 18:00")
    await handle.signal(LeadWorkflow.resync)
    await asyncio.sleep(2)
    recorded["lead-later-submission-note-resync"] = f"lead-{repeat}"

    flaky = new_phone()
    await stack.set_faults(
        fail_next=[{"method": "POST", "path_prefix": "/api/v4/leads/complex", "status": 504}]
    )
    await stack.api.post("/api/landing/proftest", json={"phone": flaky})
    await wait_all_processed(stack, [flaky])
    recorded["lead-create-answer-lost"] = f"lead-{flaky}"

    refused = new_phone()
    too_many = {"title": "Too Many Requests", "status": 429, "retry_after": 1}
    await stack.set_faults(
        fail_next=[{"method": "POST", "path_prefix": "/api/v4/leads/complex", "status": 429,
                    "body": too_many}]
    )  # fmt: skip
    await stack.api.post("/api/landing/proftest", json={"phone": refused})
    await wait_all_processed(stack, [refused])
    recorded["lead-create-refused-then-created"] = f"lead-{refused}"

    rejected = new_phone()
    await stack.set_faults(
        fail_next=[{"method": "POST", "path_prefix": "/api/v4/leads/complex", "status": 400}]
    )
    response = await stack.api.post("/api/landing/proftest", json={"phone": rejected})
    await asyncio.sleep(3)
    await stack.temporal.get_workflow_handle(response.json()["workflow_id"]).signal("retry")
    await wait_processed(stack, rejected, 1)
    recorded["lead-rejected-then-retried"] = f"lead-{rejected}"

    skipped = new_phone()
    await stack.set_faults(
        fail_next=[{"method": "POST", "path_prefix": "/api/v4/leads/complex", "status": 400}]
    )
    response = await stack.api.post("/api/landing/proftest", json={"phone": skipped})
    await stack.api.post("/api/landing/proftest", json={"phone": skipped, "name": "Вторая"})
    await asyncio.sleep(3)
    await stack.temporal.get_workflow_handle(response.json()["workflow_id"]).signal(
        LeadWorkflow.skip
    )
    await wait_processed(stack, skipped, 1)
    recorded["lead-parked-then-skipped"] = f"lead-{skipped}"
    await record_field_scenarios(stack, new_phone, recorded)

    brief = stack.settings.model_copy(update={"leadrelay_quiet_window_seconds": 1.0})
    quiet = new_phone()
    submission = build_submission("quiz", {"phone": quiet}, region="KZ", received_at="t")
    await (await deliver_submission(stack.temporal, brief, quiet, submission)).result()
    recorded["lead-quiet-window-completes"] = f"lead-{quiet}"

    await subscribe_hook(stack)
    sold = await new_express_lead(stack, new_phone())
    await move_lead(stack, sold, 142)
    await wait_handled(stack, sold, seen=1)
    recorded["entity-status-forwarded"] = entity_workflow_id("leads", sold)

    lost = await new_express_lead(stack, new_phone())
    await stack.set_faults(lost_answer_rate=1.0)
    await move_lead(stack, lost, 142)
    await wait_handled(stack, lost, seen=1)
    await stack.set_faults(lost_answer_rate=0.0)
    recorded["entity-rule-answers-lost"] = entity_workflow_id("leads", lost)

    parked = await new_express_lead(stack, new_phone())
    await stack.set_faults(
        fail_next=[{"method": "POST", "path_prefix": "/api/v4/leads/", "status": 400}]
    )
    await move_lead(stack, parked, 142)
    await asyncio.sleep(3)
    entity = stack.temporal.get_workflow_handle(entity_workflow_id("leads", parked))
    await entity.signal(AmoEntityWorkflow.skip)
    await asyncio.sleep(2)
    recorded["entity-parked-then-skipped"] = entity_workflow_id("leads", parked)

    response = await stack.api.post(
        "/api/amocrm/funnel-sale", params={"token": WEBHOOK_TOKEN}, content=b"\xff["
    )
    raw_id = raw_webhook_workflow_id(
        RawWebhook("funnel-sale", base64.b64encode(b"\xff[").decode(), None, "", [])
    )
    await stack.temporal.get_workflow_handle(raw_id).signal(RawWebhookWorkflow.reparse)
    await asyncio.sleep(2)
    recorded["raw-webhook-reparsed"] = raw_id

    schedule = stack.temporal.get_schedule_handle(RECONCILE_SCHEDULE_ID)
    await schedule.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    await asyncio.sleep(3)
    async for run in stack.temporal.list_workflows("WorkflowType='ReconcileWorkflow'"):
        recorded["reconcile-run"] = run.id

    recorded["batcher-creates"] = BATCHER_IDS[BatchKind.CREATES]
    recorded["batcher-notes"] = BATCHER_IDS[BatchKind.NOTES]

    HISTORIES.mkdir(exist_ok=True)
    for name, workflow_id in recorded.items():
        if (HISTORIES / f"{name}.json").exists():
            continue
        history = await stack.temporal.get_workflow_handle(workflow_id).fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json(), encoding="utf-8")


async def record_field_scenarios(
    stack: Stack, new_phone: Callable[[], str], recorded: dict[str, str]
) -> None:
    """UTM and form fields with a catalogue read, one contact found by email, a refused field."""
    text = f"{stack.forms_text}\n{FIELDS_FORMS}"
    await asyncio.to_thread(stack.forms_path.write_text, text, encoding="utf-8")
    try:
        await stack.restart_workers()  # a cold field-catalogue cache: the workflow reads it
        fields = new_phone()
        body = {
            "name": "Айгерим",
            "phone": fields,
            "email": email_of(fields),
            "paymentMethod": "cash",
            "course": "Python",
            "amount": "4990",
            "city": "Алматы",
            "utmParams": {"utm_source": "fb", "utm_campaign": "express"},
        }
        await stack.api.post("/api/landing/course", json=body)
        await wait_processed(stack, fields, 1)
        repeat = {**body, "paymentMethod": "kaspi", "utmParams": {"utm_medium": "cpc"}}
        await stack.api.post("/api/landing/course", json=repeat)
        await wait_processed(stack, fields, 2)
        recorded["lead-fields-new-person-and-repeat"] = f"lead-{fields}"

        known = new_phone()
        await stack.api.post("/api/landing/course", json={"email": email_of(known)})
        await wait_processed(stack, email_of(known), 1)
        await stack.api.post("/api/landing/course", json={"phone": known, "email": email_of(known)})
        await wait_processed(stack, known, 1)
        recorded["lead-email-found-phone-added"] = f"lead-{known}"

        await stack.sandbox.delete(f"/_sandbox/custom_fields/leads/{COURSE_FIELD_ID}")
        refused = new_phone()
        await stack.api.post("/api/landing/course", json={"phone": refused, "course": "Go"})
        await wait_processed(stack, refused, 1)
        recorded["lead-field-rejected-then-created-without-it"] = f"lead-{refused}"

        await stack.restart_workers()
        await stack.set_faults(page_size=3)  # each catalogue is read in several pages
        paged = new_phone()
        await stack.api.post("/api/landing/course", json={"phone": paged, "city": "Алматы"})
        await wait_processed(stack, paged, 1)
        recorded["lead-fields-catalogue-pages"] = f"lead-{paged}"
        forms = FormsFile(stack.forms_path)
        await check_forms_against_account(stack.temporal, forms, FieldCatalogueCache(600))
        await stack.set_faults(page_size=None)
        recorded["account-check"] = ACCOUNT_CHECK_WORKFLOW_ID
    finally:
        await asyncio.to_thread(stack.forms_path.write_text, stack.forms_text, encoding="utf-8")
