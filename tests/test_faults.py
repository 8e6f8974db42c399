"""amoCRM misbehaving: rate limits, outages, lost answers, bad requests, blocks."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.conftest import AMOCRM_RPS, PROFTEST_PIPELINE
from tests.support import MapForm, Stack, eventually
from tests.test_pipeline import contacts_of, leads_of, notes_of, wait_processed
from workflows.lead import LeadWorkflow


async def submit_people(stack: Stack, form: str, phones: list[str]) -> None:
    responses = await asyncio.gather(
        *(
            stack.api.post(f"/api/landing/{form}", json={"name": f"Лид {n}", "phone": phone})
            for n, phone in enumerate(phones)
        )
    )
    assert [r.status_code for r in responses] == [202] * len(phones)


async def wait_all_processed(stack: Stack, phones: list[str]) -> None:
    await asyncio.gather(*(wait_processed(stack, phone, 1) for phone in phones))


def assert_exactly_one_lead_each(state: dict, phones: list[str]) -> None:
    """One contact, one lead and one note per person: nothing lost, nothing doubled."""
    for phone in phones:
        assert len(contacts_of(state, phone[1:])) == 1, phone
        [lead] = leads_of(state, phone[1:])
        assert len(notes_of(state, lead["id"])) == 1, phone


async def test_every_lead_lands_once_through_429s_5xx_and_lost_answers(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    await stack.set_faults(
        seed=7,
        error_rate=0.15,
        lost_answer_rate=0.3,
        fail_next=[
            {"method": "GET", "path_prefix": "/api/v4/contacts", "status": 429,
             "body": {"title": "Too Many Requests", "status": 429, "retry_after": 1}, "times": 3},
        ],
    )  # fmt: skip
    phones = [new_phone() for _ in range(12)]
    await submit_people(stack, "proftest", phones)
    await wait_all_processed(stack, phones)

    assert_exactly_one_lead_each(await stack.sandbox_state(), phones)
    statuses = Counter(entry["status"] for entry in await stack.sandbox_requests())
    # The faults really happened, so the exactly-once result above means something.
    assert statuses[429] >= 3 and statuses[504] >= 1 and statuses[503] >= 1, statuses


async def test_bad_request_parks_the_submission_until_retry_signal(
    clean_sandbox: Stack, extra_form: MapForm, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    await extra_form("broken", 999999)
    phone = new_phone()
    response = await stack.api.post("/api/landing/broken", json={"phone": phone})
    assert response.status_code == 202

    async def failed() -> bool:
        view = await stack.lead_view(phone)
        return view["step"] == "failed"

    await eventually(failed)
    view = await stack.lead_view(phone)
    assert view["last_error"]["kind"] == "AmoRejected"
    assert "pipeline_id" in view["last_error"]["message"]
    assert view["submissions_pending"] == 1

    creates_so_far = await count_requests(stack, "POST", "/api/v4/leads/complex")
    await asyncio.sleep(3)
    assert await count_requests(stack, "POST", "/api/v4/leads/complex") == creates_so_far == 1

    await extra_form("broken", PROFTEST_PIPELINE)
    await stack.temporal.get_workflow_handle(response.json()["workflow_id"]).signal(
        LeadWorkflow.retry
    )
    view = await wait_processed(stack, phone, 1)
    assert view["submissions_pending"] == 0
    [lead] = leads_of(await stack.sandbox_state(), phone[1:])
    assert lead["pipeline_id"] == PROFTEST_PIPELINE


async def test_skip_sets_the_parked_submission_aside_and_goes_on_with_the_next(
    clean_sandbox: Stack, extra_form: MapForm, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    await extra_form("broken-skip", 999999)
    phone = new_phone()
    response = await stack.api.post("/api/landing/broken-skip", json={"phone": phone})
    handle = stack.temporal.get_workflow_handle(response.json()["workflow_id"])

    async def parked_with_next_waiting() -> bool:
        view = await stack.lead_view(phone)
        return view["step"] == "failed" and view["submissions_pending"] == 2

    await stack.api.post("/api/landing/proftest", json={"phone": phone, "name": "Вторая"})
    await eventually(parked_with_next_waiting)
    await handle.signal(LeadWorkflow.skip)
    await wait_processed(stack, phone, 1)

    state = await handle.query(LeadWorkflow.state)
    assert state.submissions_skipped == 1 and state.submissions_processed == 1
    [skipped] = state.skipped
    assert skipped.submission.form == "broken-skip"
    assert skipped.error is not None and skipped.error.kind == "AmoRejected"
    [lead] = leads_of(await stack.sandbox_state(), phone[1:])
    assert lead["pipeline_id"] == PROFTEST_PIPELINE


@pytest.mark.parametrize("status", [401, 402])
async def test_auth_failure_stops_the_lead_without_hammering(
    clean_sandbox: Stack, new_phone: Callable[[], str], status: int
) -> None:
    stack = clean_sandbox
    await stack.set_faults(
        fail_next=[{"method": "GET", "path_prefix": "/api/v4/contacts", "status": status}]
    )
    phone = new_phone()
    response = await stack.api.post("/api/landing/proftest", json={"phone": phone})

    async def failed() -> bool:
        return (await stack.lead_view(phone))["step"] == "failed"

    await eventually(failed)
    assert (await stack.lead_view(phone))["last_error"]["kind"] == "AmoAuthError"
    await asyncio.sleep(2)
    assert len(await stack.sandbox_requests()) == 1

    await stack.temporal.get_workflow_handle(response.json()["workflow_id"]).signal("retry")
    await wait_processed(stack, phone, 1)


async def test_a_403_block_pauses_traffic_instead_of_retrying_hot(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    await stack.set_faults(
        fail_next=[{"method": "GET", "path_prefix": "/api/v4/contacts", "status": 403}]
    )
    phones = [new_phone() for _ in range(3)]
    await submit_people(stack, "proftest", phones)
    blocked_at = time.time()
    await wait_all_processed(stack, phones)

    requests = await stack.sandbox_requests()
    first_403 = next(entry["t"] for entry in requests if entry["status"] == 403)
    during_block = [
        entry for entry in requests
        if first_403 < entry["t"] < first_403 + stack.settings.amocrm_block_backoff_seconds - 0.5
    ]  # fmt: skip
    assert first_403 >= blocked_at - 1
    assert during_block == [], "no amoCRM request while the account is blocked"
    assert_exactly_one_lead_each(await stack.sandbox_state(), phones)


async def test_a_burst_never_exceeds_the_rate_budget(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    phones = [new_phone() for _ in range(100)]
    await submit_people(stack, "proftest", phones)

    async def all_noted() -> bool:
        return len((await stack.sandbox_state())["notes"]) >= len(phones)

    await eventually(all_noted, within=240, interval=2)
    stats = await stack.sandbox_stats()
    assert stats["peak_1s"] <= AMOCRM_RPS, stats
    # One search per new person; creates and notes go in batches, not one write each.
    assert stats["by_status"]["204"] == 100 and set(stats["by_status"]) == {"200", "204"}, stats
    assert stats["by_status"]["200"] <= 40, stats
    assert_exactly_one_lead_each(await stack.sandbox_state(), phones)


async def count_requests(stack: Stack, method: str, path: str) -> int:
    return sum(
        1
        for entry in await stack.sandbox_requests()
        if entry["method"] == method and entry["path"] == path
    )
