"""Landing forms → Temporal → amoCRM (the sandbox), end to end over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from api.intake import build_submission
from leadrelay.models import LeadStart, Step, Submission
from leadrelay.settings import WORKFLOW_TASK_QUEUE
from tests.conftest import EXPRESS_PIPELINE, PROFTEST_PIPELINE, PROFTEST_STATUS
from tests.support import Stack, eventually
from workflows.lead import LeadWorkflow
from workflows.starts import deliver_submission

PROFTEST_BODY: dict[str, Any] = {
    "name": "Айгерим",
    "email": "aigerim@example.com",
    "source": "proftest_kenesary",
    "answers": [1, 0, 2, 3, 1, 0, 2, 1, 3, 0],
    "proftestAnswers": [
        {"questionNumber": 1, "question": "Сколько вам лет?", "answer": "19–25"},
        {
            "questionNumber": 2,
            "question": "Кем вы сейчас работаете/зарабатываете?",
            "answer": "Владелец бизнеса",
        },
    ],
    "campaignSlug": "kenesary",
    "utmParams": {"utm_source": "fb", "utm_medium": "cpc", "utm_campaign": "proftest"},
}


def leads_of(state: dict[str, Any], phone_digits: str) -> list[dict[str, Any]]:
    contact_ids = {c["id"] for c in contacts_of(state, phone_digits)}
    return [lead for lead in state["leads"] if contact_ids & set(_lead_contact_ids(lead))]


def contacts_of(state: dict[str, Any], phone_digits: str) -> list[dict[str, Any]]:
    return [
        contact
        for contact in state["contacts"]
        if any(
            phone_digits in "".join(ch for ch in value["value"] if ch.isdigit())
            for field in contact.get("custom_fields_values") or []
            if field.get("field_code") == "PHONE"
            for value in field["values"]
        )
    ]


def notes_of(state: dict[str, Any], lead_id: int) -> list[str]:
    return [n["params"]["text"] for n in state["notes"] if n["entity_id"] == lead_id]


def _lead_contact_ids(lead: dict[str, Any]) -> list[int]:
    return [c["id"] for c in (lead.get("_embedded") or {}).get("contacts") or []]


async def wait_processed(stack: Stack, lead_key: str, count: int) -> dict[str, Any]:
    view: dict[str, Any] = {}

    async def processed() -> bool:
        nonlocal view
        response = await stack.lead_response(lead_key)
        view = response.json() if response.status_code == 200 else {}
        return view.get("submissions_processed", 0) >= count

    await eventually(processed)
    return view


async def test_one_form_makes_one_lead_with_contact_and_note(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    phone = new_phone()
    response = await stack.api.post("/api/landing/proftest", json={**PROFTEST_BODY, "phone": phone})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["lead_key"] == phone
    assert accepted["workflow_id"] == f"lead-{phone}"

    view = await wait_processed(stack, phone, 1)
    state = await stack.sandbox_state()
    [contact] = contacts_of(state, phone[1:])
    [lead] = leads_of(state, phone[1:])
    assert view["amocrm_lead_id"] == lead["id"]
    assert view["amocrm_contact_id"] == contact["id"]
    assert lead["pipeline_id"] == PROFTEST_PIPELINE
    assert lead["status_id"] == PROFTEST_STATUS
    assert lead["name"] == "Профтест: Айгерим"
    assert [t["name"] for t in lead["_embedded"]["tags"]] == ["proftest"]
    [note] = notes_of(state, lead["id"])
    for expected in ("proftest", "utm_source=fb", "Сколько вам лет? — 19–25", "Владелец бизнеса"):
        assert expected in note
    stats = await stack.sandbox_stats()
    # Search by phone, then by email (amoCRM does not know the phone), create, note.
    assert stats["total"] == 4, stats["by_route"]


async def test_concurrent_submissions_for_one_person_make_one_lead(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    e164 = new_phone()
    national = e164[2:]
    spellings = [
        f"+7 {national[:3]} {national[3:6]} {national[6:8]} {national[8:]}",
        f"8{national}",
        national,
        f"+7({national[:3]}){national[3:6]}-{national[6:8]}-{national[8:]}",
    ]
    comments = [f"вопрос {n}" for n in range(5)]
    # Every spelling with every comment; 20 stays within the per-person bound at intake.
    bodies = [
        {"name": "Ерлан", "phone": spellings[i % 4], "comment": comments[i % 5]} for i in range(20)
    ]
    responses = await asyncio.gather(
        *(stack.api.post("/api/landing/express-course", json=body) for body in bodies)
    )
    assert {r.status_code for r in responses} == {202}
    assert {r.json()["workflow_id"] for r in responses} == {f"lead-{e164}"}

    # The phone spelling does not make a submission distinct; the comment does.
    view = await wait_processed(stack, e164, len(comments))
    assert view["submissions_seen"] == 20
    assert view["duplicates_dropped"] == 20 - len(comments)
    state = await stack.sandbox_state()
    assert len(contacts_of(state, national)) == 1
    [lead] = leads_of(state, national)
    assert lead["pipeline_id"] == EXPRESS_PIPELINE
    notes = notes_of(state, lead["id"])
    assert sorted(c for c in comments for note in notes if c in note) == sorted(comments)


async def test_later_submission_notes_open_lead_and_closed_lead_gets_a_new_one(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    phone = new_phone()
    first = {"name": "Ержан", "phone": phone, "paymentMethod": "kaspi"}
    assert (await stack.api.post("/api/landing/express-course", json=first)).status_code == 202
    await wait_processed(stack, phone, 1)
    before_second = (await stack.sandbox_stats())["total"]

    second = {**first, "paymentMethod": "card"}
    assert (await stack.api.post("/api/landing/express-course", json=second)).status_code == 202
    view = await wait_processed(stack, phone, 2)
    state = await stack.sandbox_state()
    [lead] = leads_of(state, phone[1:])
    assert lead["status_id"] == 54423922, "a later submission never moves the lead"
    notes = notes_of(state, lead["id"])
    assert len(notes) == 2 and "card" in notes[1]
    assert (await stack.sandbox_stats())["total"] - before_second == 2  # read lead, note

    moved = await stack.sandbox.post(
        f"/_sandbox/leads/{lead['id']}/status", json={"status_id": 142}
    )
    moved.raise_for_status()
    third = {**first, "comment": "хочу ещё курс"}
    assert (await stack.api.post("/api/landing/express-course", json=third)).status_code == 202
    view = await wait_processed(stack, phone, 3)
    state = await stack.sandbox_state()
    leads = sorted(leads_of(state, phone[1:]), key=lambda item: item["id"])
    assert [item["status_id"] for item in leads] == [142, 54423922]
    assert len(contacts_of(state, phone[1:])) == 1
    assert view["amocrm_lead_id"] == leads[1]["id"]
    assert "хочу ещё курс" in notes_of(state, leads[1]["id"])[0]


async def test_after_the_quiet_window_a_new_run_finds_the_existing_lead(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    phone = new_phone()
    brief = stack.settings.model_copy(update={"leadrelay_quiet_window_seconds": 1.0})
    body = {"phone": phone, "email": "late@example.kz"}
    submission = build_submission("proftest", body, region="KZ", received_at="t1")
    handle = await deliver_submission(stack.temporal, brief, phone, submission)
    first_run = await handle.result()
    assert first_run.step == Step.DONE and first_run.lead_id is not None

    again = build_submission(
        "proftest", {**body, "comment": "снова"}, region="KZ", received_at="t2"
    )
    second_run = await (await deliver_submission(stack.temporal, brief, phone, again)).result()
    assert second_run.lead_id == first_run.lead_id, "the open lead is found, not duplicated"
    state = await stack.sandbox_state()
    assert len(leads_of(state, phone[1:])) == 1
    assert len(notes_of(state, first_run.lead_id)) == 2


async def test_continue_as_new_keeps_the_lead_and_the_memory_of_repeats(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    phone = new_phone()
    bodies = [{"phone": phone, "comment": f"заявка {n}"} for n in range(3)]
    submissions = [
        build_submission("proftest", body, region="KZ", received_at=str(n))
        for n, body in enumerate(bodies)
    ]
    start = LeadStart(phone, quiet_window_seconds=600, submissions_per_run=2)

    async def submit(submission: Submission) -> None:
        await stack.temporal.start_workflow(
            "LeadWorkflow",
            start,
            id=f"lead-{phone}",
            task_queue=WORKFLOW_TASK_QUEUE,
            start_signal="submit",
            start_signal_args=[submission],
        )

    for submission in submissions:
        await submit(submission)
    await wait_processed(stack, phone, 3)
    await submit(submissions[0])  # after continue-as-new: the new run must still know it

    async def repeat_seen() -> bool:
        return (await stack.lead_view(phone))["submissions_seen"] == 4

    await eventually(repeat_seen)
    view = await stack.lead_view(phone)
    assert view["duplicates_dropped"] == 1 and view["submissions_processed"] == 3
    state = await stack.temporal.get_workflow_handle(f"lead-{phone}").query(LeadWorkflow.state)
    assert state.runs == 2
    [lead] = leads_of(await stack.sandbox_state(), phone[1:])
    assert len(notes_of(await stack.sandbox_state(), lead["id"])) == 3
