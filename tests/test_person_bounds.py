"""Whatever one person sends, their lead workflow stays inside Temporal's limits.

Numbered failure 4 of issue 8: 40 different 56 KB forms for one phone, all answered 202,
grew the lead workflow's continue-as-new input to 6.3 MB against Temporal's 2 MB limit;
its workflow task then failed forever and 39 of the 40 never reached amoCRM.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import httpx
from temporalio.service import RPCError, RPCStatusCode

from api.intake import build_submission
from leadrelay.limits import LEAD_PENDING_BYTES
from leadrelay.models import LeadStart, LeadState, Submission
from leadrelay.payloads import DATA_CONVERTER
from tests.support import Stack, eventually
from tests.test_pipeline import wait_processed
from workflows.lead import LeadWorkflow

FORMS = 40
ANSWERS = 14
ANSWER_LETTERS = 2000  # Cyrillic: 4 KB a answer in UTF-8, 56 KB a form


def big_quiz(phone: str, number: int) -> dict[str, Any]:
    """A quiz form of about 56 KB, different for every `number`."""
    answers = [
        {"question": f"Вопрос {n}", "answer": f"{number}-{n} " + "Ж" * ANSWER_LETTERS}
        for n in range(ANSWERS)
    ]
    return {"name": f"Айгерим {number}", "phone": phone, "proftestAnswers": answers}


async def test_forty_large_forms_for_one_person_all_reach_amocrm(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    phone = new_phone()
    sizes = {len(json.dumps(big_quiz(phone, n), ensure_ascii=False).encode()) for n in range(3)}
    assert min(sizes) > 56_000, sizes

    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api:
        answers = await asyncio.gather(
            *(api.post("/api/landing/proftest", json=big_quiz(phone, n)) for n in range(FORMS))
        )
    accepted = {r.json()["submission_id"] for r in answers if r.status_code == 202}
    assert all(r.status_code in (202, 429) for r in answers), [r.status_code for r in answers]
    assert accepted, "intake accepted none of the forms"

    handle = stack.temporal.get_workflow_handle_for(LeadWorkflow.run, f"lead-{phone}")
    state: LeadState | None = None

    async def every_accepted_form_is_in_amocrm_or_dead_lettered() -> bool:
        nonlocal state
        try:
            state = await handle.query(LeadWorkflow.state)
        except RPCError as err:  # not started yet: the outbox may still hold the forms
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return False
        noted = await _noted_submission_ids(stack, accepted)
        dead = {letter.submission_id for letter in state.dead_letters}
        # A note exists in amoCRM a moment before the workflow counts it as processed.
        counted = state.submissions_processed + state.dead_lettered == len(accepted)
        return accepted <= noted | dead and counted

    await eventually(every_accepted_form_is_in_amocrm_or_dead_lettered, within=240, interval=2)
    assert state is not None
    assert state.runs > 1 or _carried_size(state) < LEAD_PENDING_BYTES * 2


async def _noted_submission_ids(stack: Stack, accepted: set[str]) -> set[str]:
    notes = [note["params"]["text"] for note in (await stack.sandbox_state())["notes"]]
    return {sid for sid in accepted if any(f"id {sid[:16]}" in text for text in notes)}


def _carried_size(state: LeadState) -> int:
    return DATA_CONVERTER.payload_converter.to_payloads([state])[0].ByteSize()


def test_a_cut_submission_still_names_the_person_and_says_what_was_cut() -> None:
    from leadrelay.bounded import CUT_NOTICE_FIELD, cut_submission
    from leadrelay.notes import submission_note

    whole = Submission(
        submission_id="f" * 64,
        form="proftest",
        received_at="2026-01-01T00:00:00+00:00",
        name="Айгерим",
        phone="+77011234567",
        comment="Ж" * 5000,
        utm={"utm_source": "fb"},
        extras={"proftestAnswers": [{"q": "Кто вы?", "a": "Ж" * 5000}]},
    )
    cut = cut_submission(whole, "истории Temporal")
    note = submission_note(cut)
    assert "+77011234567" in note and "Айгерим" in note and "utm_source=fb" in note
    assert f"{CUT_NOTICE_FIELD}:" in note and "истории Temporal" in note
    assert f"id {whole.submission_id[:16]}" in note
    assert len(note.encode()) < 4000


FLOOD_SIGNALS = 14
FLOOD_TEXT = "x" * 600_000  # 14 of these pass Temporal's 4 MB continue-as-new suggestion


async def _flood_with_repeats(stack: Stack, workflow_id: str, repeat: Submission) -> None:
    """Repeats are dropped, but each is still an event in the history."""
    handle = stack.temporal.get_workflow_handle(workflow_id)
    big = dataclasses.replace(repeat, extras={"flood": FLOOD_TEXT})
    for _ in range(FLOOD_SIGNALS):
        await handle.signal(LeadWorkflow.submit, big)


async def _state(stack: Stack, workflow_id: str) -> LeadState:
    handle = stack.temporal.get_workflow_handle(workflow_id, result_type=LeadState)
    return await handle.query(LeadWorkflow.state)


async def _wait_state(
    stack: Stack, workflow_id: str, until: Callable[[LeadState], bool]
) -> LeadState:
    """The lead workflow's state once `until(state)` holds; a query meeting a workflow task
    being retried is waited out."""

    async def lead_state_met() -> bool:
        try:
            return until(await _state(stack, workflow_id))
        except RPCError:
            return False

    await eventually(lead_state_met)
    return await _state(stack, workflow_id)


async def test_a_flood_of_repeats_to_an_idle_person_continues_as_new(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    phone = new_phone()
    answer = await stack.api.post("/api/landing/proftest", json={"phone": phone})
    workflow_id = answer.json()["workflow_id"]
    await wait_processed(stack, phone, 1)
    processed = (await _state(stack, workflow_id)).processed_ids[-1]
    repeat = build_submission("proftest", {"phone": phone}, region="KZ", received_at="t")
    assert repeat.submission_id == processed

    await _flood_with_repeats(stack, workflow_id, repeat)

    state = await _wait_state(stack, workflow_id, lambda state: state.runs > 1)
    assert state.duplicates_dropped == FLOOD_SIGNALS and state.submissions_processed == 1


async def test_a_parked_person_flooded_with_repeats_continues_as_new_still_parked(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    phone = new_phone()
    await stack.set_faults(
        fail_next=[{"method": "POST", "path_prefix": "/api/v4/leads/complex", "status": 400}]
    )
    answer = await stack.api.post("/api/landing/proftest", json={"phone": phone})
    workflow_id, submission_id = answer.json()["workflow_id"], answer.json()["submission_id"]

    parked = await _wait_state(
        stack, workflow_id, lambda state: state.parked_submission_id == submission_id
    )
    creates = await _creates(stack)
    pending = parked.pending[0]

    await _flood_with_repeats(stack, workflow_id, pending)

    state = await _wait_state(stack, workflow_id, lambda state: state.runs > 1)
    assert state.parked_submission_id == submission_id and state.step == "failed"
    assert [s.submission_id for s in state.pending] == [submission_id]
    assert await _creates(stack) == creates, "the new run waits for the operator first"

    await stack.temporal.get_workflow_handle(workflow_id).signal(LeadWorkflow.retry)
    view = await wait_processed(stack, phone, 1)
    assert view["amocrm_lead_id"] is not None


async def _creates(stack: Stack) -> int:
    requests = await stack.sandbox_requests()
    return sum(r["path"] == "/api/v4/leads/complex" for r in requests)


def test_the_carried_state_fits_one_payload_with_every_bound_reached() -> None:
    """The continue-as-new input at its worst: pending at the budget, and every other list
    full of its largest items. It must stay under Temporal's 2 MB payload limit."""
    from leadrelay.bounded import cut_text
    from leadrelay.limits import (
        DEAD_LETTERS_KEPT,
        ERROR_MESSAGE_CHARS,
        OPERATOR_NOTE_CHARS,
        OPERATOR_REQUESTS_KEPT,
        PROCESSED_IDS_KEPT,
        SKIPPED_KEPT,
        SKIPPED_SUBMISSION_BYTES,
        TEMPORAL_PAYLOAD_LIMIT_BYTES,
    )
    from leadrelay.models import DeadLetter, LeadError, OperatorRequest, SkippedSubmission

    def submission(n: int, text_bytes: int) -> Submission:
        return Submission(
            submission_id=f"{n:064x}",
            form="proftest",
            received_at="2026-12-02T18:00:00+00:00",
            phone="+77011234567",
            extras={"text": "Ж" * (text_bytes // 2)},
        )

    error = LeadError("AmoRejected", "Ж" * ERROR_MESSAGE_CHARS, "t", "f" * 64)
    pending = [submission(n, 50_000) for n in range(LEAD_PENDING_BYTES // 51_000)]
    assert sum(_carried_size(p) for p in pending) <= LEAD_PENDING_BYTES
    state = LeadState(
        lead_key="+77011234567",
        pending=pending,
        processed_ids=[f"{n:064x}" for n in range(PROCESSED_IDS_KEPT)],
        last_error=error,
        operator_requests=[
            OperatorRequest("note", cut_text("Ж" * 10_000, OPERATOR_NOTE_CHARS))
            for _ in range(OPERATOR_REQUESTS_KEPT)
        ],
        dead_letters=[
            DeadLetter(f"{n:064x}", "proftest", "t", "pending full", "r" * 36)
            for n in range(DEAD_LETTERS_KEPT)
        ],
        skipped=[
            SkippedSubmission(submission(n, SKIPPED_SUBMISSION_BYTES - 1_000), error, "t")
            for n in range(SKIPPED_KEPT)
        ],
    )
    size = _carried_size(LeadStart("+77011234567", 1800.0, carried=state))
    assert size < TEMPORAL_PAYLOAD_LIMIT_BYTES * 0.9, size  # measured: 1.61 MB
