"""Batched creates and notes: many people per amoCRM request, still exactly once each."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from amocrm.models import NewLead, NewNote
from tests.support import MapForm, Stack, eventually
from tests.test_faults import assert_exactly_one_lead_each, submit_people, wait_all_processed
from tests.test_pipeline import wait_processed
from workflows.batcher import (
    BATCHER_IDS,
    AmoBatcherWorkflow,
    BatcherConfig,
    BatchKind,
    BatchRequest,
    _round_robin_by_form,
    _split,
)
from workflows.starts import ensure_batchers

COMPLEX = "/api/v4/leads/complex"
NOTES = "/api/v4/leads/notes"


def writes(requests: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    return [r for r in requests if r["method"] == "POST" and r["path"] == path]


async def test_a_burst_shares_create_and_note_requests_matched_by_request_id(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    phones = [new_phone() for _ in range(12)]
    await submit_people(stack, "proftest", phones)
    await wait_all_processed(stack, phones)

    assert_exactly_one_lead_each(await stack.sandbox_state(), phones)
    requests = await stack.sandbox_requests()
    creates, notes = writes(requests, COMPLEX), writes(requests, NOTES)
    assert sum(len(r["body"]) for r in creates) == 12
    assert len(creates) < 12 and max(len(r["body"]) for r in creates) > 1, creates
    assert len(notes) < 12 and sum(len(r["body"]) for r in notes) == 12
    # Every item carried its own request_id: the answers were matched by it.
    request_ids = [item["request_id"] for r in creates + notes for item in r["body"]]
    assert len(set(request_ids)) == 24


async def test_lost_batch_answers_make_every_member_look_before_writing_again(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    # Every write is applied, and every answer is lost on the way back.
    await stack.set_faults(lost_answer_rate=1.0)
    phones = [new_phone() for _ in range(8)]
    await submit_people(stack, "proftest", phones)
    await wait_all_processed(stack, phones)

    assert_exactly_one_lead_each(await stack.sandbox_state(), phones)
    requests = await stack.sandbox_requests()
    lost_batches = [r for r in writes(requests, COMPLEX) if r["status"] == 504]
    assert any(len(r["body"]) > 1 for r in lost_batches), lost_batches
    # Each lead was written once: after the lost answer the members searched and found it.
    assert sum(len(r["body"]) for r in writes(requests, COMPLEX)) == 8
    assert sum(len(r["body"]) for r in writes(requests, NOTES)) == 8


async def test_a_refused_batch_is_split_so_one_bad_item_parks_alone(
    clean_sandbox: Stack, new_phone: Callable[[], str], extra_form: MapForm
) -> None:
    stack = clean_sandbox
    await extra_form("broken", 999999)  # no such pipeline: amoCRM answers 400 for the item
    creates = stack.temporal.get_workflow_handle(BATCHER_IDS[BatchKind.CREATES])
    # A long linger, and both forms just sent (primers): the items that follow wait and go
    # together, the broken form's with the others.
    await creates.signal(AmoBatcherWorkflow.configure, BatcherConfig(linger_seconds=10))
    try:
        primers = [new_phone(), new_phone()]
        await asyncio.gather(
            submit_people(stack, "proftest", primers[:1]),
            submit_people(stack, "broken", primers[1:]),
        )
        await wait_processed(stack, primers[0], 1)
        await eventually(functools.partial(parked, stack, primers[1]))
        good = [new_phone() for _ in range(4)]
        bad = new_phone()
        await asyncio.gather(
            submit_people(stack, "proftest", good), submit_people(stack, "broken", [bad])
        )
        await wait_all_processed(stack, good)
        await eventually(functools.partial(parked, stack, bad))
    finally:
        linger = stack.settings.leadrelay_batch_linger_seconds
        await creates.signal(AmoBatcherWorkflow.configure, BatcherConfig(linger_seconds=linger))

    view = await stack.lead_view(bad)
    assert view["last_error"]["kind"] == "AmoRejected", view
    assert_exactly_one_lead_each(await stack.sandbox_state(), [primers[0], *good])
    refused = [r for r in writes(await stack.sandbox_requests(), COMPLEX) if r["status"] == 400]
    assert any(len(r["body"]) > 1 for r in refused), refused


async def parked(stack: Stack, lead_key: str) -> bool:
    return (await stack.lead_view(lead_key))["step"] == "failed"


async def test_the_batcher_reports_what_it_sent(clean_sandbox: Stack, new_phone: Callable[[], str]):
    stack = clean_sandbox
    phone = new_phone()
    await submit_people(stack, "proftest", [phone])
    await wait_processed(stack, phone, 1)
    handle = stack.temporal.get_workflow_handle(BATCHER_IDS[BatchKind.CREATES])
    status = await handle.query(AmoBatcherWorkflow.status)
    assert status.kind == BatchKind.CREATES and status.batches_sent >= 1
    assert status.items_sent >= 1 and status.in_flight == 0


async def test_without_batchers_each_lead_writes_on_its_own(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    for kind in BatchKind:  # an operator ended both batchers
        await stack.temporal.get_workflow_handle(BATCHER_IDS[kind]).terminate("test")
    try:
        phones = [new_phone() for _ in range(6)]
        await submit_people(stack, "proftest", phones)
        await wait_all_processed(stack, phones)
    finally:
        await ensure_batchers(stack.temporal, stack.settings)

    assert_exactly_one_lead_each(await stack.sandbox_state(), phones)
    requests = await stack.sandbox_requests()
    # Six people at once would share batches; alone, each write is its own request.
    for path in (COMPLEX, NOTES):
        sent = writes(requests, path)
        assert [len(r["body"]) for r in sent] == [1] * len(phones), (path, sent)


def _request(form: str, n: int) -> BatchRequest:
    return BatchRequest(f"lead-{n}", form, lead=NewLead(f"L{n}", None, None, [], request_id=str(n)))


def test_batches_take_forms_in_turn() -> None:
    pending = [_request("a", n) for n in range(5)] + [_request("b", 10), _request("b", 11)]
    order = [r.request_id for r in _round_robin_by_form(pending)]
    assert order == ["0", "10", "1", "11", "2", "3", "4"]


def test_a_refused_batch_splits_named_items_off_else_in_halves() -> None:
    batch = [_request("a", n) for n in range(5)]
    named = _split(batch, {"3"})
    assert [[r.request_id for r in part] for part in named] == [["3"], ["0", "1", "2", "4"]]
    halves = _split(batch, set())
    assert [[r.request_id for r in part] for part in halves] == [["0", "1"], ["2", "3", "4"]]
    note = BatchRequest("lead-1", "a", note=NewNote(1, "text", request_id="id 1"))
    assert note.request_id == "id 1"
