"""Forwarded events: signed over a timestamp and the body, parked on a receiver's refusal."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from leadrelay.forms import FormsConfig
from leadrelay.signing import signature_header, verify_signature
from tests.conftest import EXPRESS_PIPELINE
from tests.support import Receiver, Stack, eventually
from tests.test_pipeline import notes_of
from tests.test_webhooks import (
    forwards_for,
    move_lead,
    new_express_lead,
    subscribe_hook,
    wait_entity,
    wait_handled,
)
from workflows.amocrm_entity import AmoEntityWorkflow

WORKER = Path(__file__).resolve().parent.parent / "worker.py"
BODY = b'{"rule":"express-sale","lead":{"id":1}}'


def test_a_signature_verifies_only_for_its_body_its_secret_and_a_recent_time() -> None:
    now = 1_800_000_000
    header = signature_header("s3cret", BODY, now)
    assert header.startswith(f"t={now},v1=")
    assert verify_signature("s3cret", header, BODY, now=now + 10)
    assert not verify_signature("s3cret", header, BODY + b" ", now=now)
    assert not verify_signature("other", header, BODY, now=now)
    # A captured request replayed later is refused, though its HMAC is still right.
    assert not verify_signature("s3cret", header, BODY, now=now + 301)
    # The timestamp is signed: moving it forward breaks the HMAC.
    moved = header.replace(f"t={now}", f"t={now + 600}")
    assert not verify_signature("s3cret", moved, BODY, now=now + 600)
    # While secrets rotate, a header may carry one v1 per secret.
    rotating = f"{header},v1={signature_header('new', BODY, now).split('v1=')[1]}"
    assert verify_signature("new", rotating, BODY, now=now)
    assert not verify_signature("s3cret", "v1=abc", BODY, now=now)


FORWARD_RULE = """
[[rules]]
name = "sale"
status_id = 142
actions = [{{ type = "forward", url = "https://academy.example/sales"{extra} }}]
"""


def test_the_worker_refuses_to_start_with_a_forward_rule_and_no_signing_secret(
    tmp_path: Path,
) -> None:
    forms = tmp_path / "forms.toml"
    forms.write_text(FORWARD_RULE.format(extra=""), encoding="utf-8")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FORWARD_", "LEADRELAY_", "AMOCRM_", "TEMPORAL_"))
    }
    env |= {"LEADRELAY_FORMS": str(forms), "AMOCRM_BASE_URL": "http://127.0.0.1:9"}
    started = subprocess.run(
        [sys.executable, str(WORKER)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "FORWARD_SIGNING_SECRET" in started.stderr and "sale" in started.stderr

    allowed = FORWARD_RULE.format(extra=", allow_unsigned = true")
    assert FormsConfig.model_validate(_toml(allowed)).unsigned_forwards() == []
    assert FormsConfig.model_validate(_toml(FORWARD_RULE.format(extra=""))).unsigned_forwards() == [
        "sale"
    ]


def _toml(text: str) -> dict[str, object]:
    return tomllib.loads(text)


@pytest.fixture
def refusing_receiver(stack: Stack) -> Iterator[Callable[[int], None]]:
    def refuse(status: int) -> None:
        stack.receiver.answer_status = status

    yield refuse
    stack.receiver.answer_status = 200


async def test_a_receivers_4xx_parks_the_event_until_retry(
    clean_sandbox: Stack, new_phone: Callable[[], str], refusing_receiver: Callable[[int], None]
) -> None:
    stack = clean_sandbox
    await subscribe_hook(stack)
    refusing_receiver(422)
    lead_id = await new_express_lead(stack, new_phone())
    await move_lead(stack, lead_id, 142)

    await wait_entity(
        stack, lead_id, lambda state: any("ForwardRejected" in a.outcome for a in state.actions)
    )
    await asyncio.sleep(3)
    assert len(forwards_for(stack, lead_id)) == 1, "a 4xx is not retried by itself"

    refusing_receiver(200)
    handle = stack.temporal.get_workflow_handle(f"amocrm-lead-{lead_id}")
    await handle.signal(AmoEntityWorkflow.retry)

    async def delivered() -> bool:
        return len(forwards_for(stack, lead_id)) == 2

    await eventually(delivered)
    state = await wait_handled(stack, lead_id, seen=1)
    assert [a.outcome for a in state.actions if a.action == "forward"][-1] == "done"
    last = stack.receiver.received[-1]
    assert verify_signature(
        stack.settings.forward_signing_secret or "",
        last.headers["x-leadrelay-signature"],
        last.body,
        now=time.time(),
    )


GIVE_UP_RULE = """
[[rules]]
name = "lost-sale"
pipeline_id = {pipeline}
status_id = 143
actions = [
  {{ type = "forward", url = "{receiver}/events", give_up_after_hours = 0.001 }},
  {{ type = "note", text = "Отказ записан" }},
]
"""


@pytest.fixture
async def give_up_rule(stack: Stack, receiver: tuple[Receiver, str]) -> AsyncIterator[None]:
    text = stack.forms_text + GIVE_UP_RULE.format(pipeline=EXPRESS_PIPELINE, receiver=receiver[1])
    await asyncio.to_thread(stack.forms_path.write_text, text, encoding="utf-8")
    yield
    await asyncio.to_thread(stack.forms_path.write_text, stack.forms_text, encoding="utf-8")


async def test_a_forward_retried_past_its_age_becomes_a_visible_dead_letter(
    clean_sandbox: Stack,
    new_phone: Callable[[], str],
    refusing_receiver: Callable[[int], None],
    give_up_rule: None,
) -> None:
    stack = clean_sandbox
    await subscribe_hook(stack)
    refusing_receiver(503)
    lead_id = await new_express_lead(stack, new_phone())
    await move_lead(stack, lead_id, 143)

    await wait_entity(stack, lead_id, lambda state: state.forwards_dead_lettered == 1)
    state = await wait_handled(stack, lead_id, seen=1)
    [letter] = state.dead_letters
    assert (letter.rule, letter.event.entity_id) == ("lost-sale", lead_id)
    assert letter.url.endswith("/events") and "no 2xx within" in letter.reason
    outcomes = [(a.action, a.outcome) for a in state.actions]
    assert ("forward", "dead letter") in outcomes and ("note", "done") in outcomes
    assert len(forwards_for(stack, lead_id)) >= 2, "a 503 was retried before giving up"
    notes = [n for n in notes_of(await stack.sandbox_state(), lead_id) if "Отказ" in n]
    assert len(notes) == 1, "the rule's other actions still ran"


async def test_a_parked_event_flooded_with_redeliveries_continues_as_new_still_parked(
    clean_sandbox: Stack, new_phone: Callable[[], str], refusing_receiver: Callable[[int], None]
) -> None:
    stack = clean_sandbox
    await subscribe_hook(stack)
    refusing_receiver(422)
    lead_id = await new_express_lead(stack, new_phone())
    await move_lead(stack, lead_id, 142)

    parked = await wait_entity(stack, lead_id, lambda state: state.parked_event_key is not None)
    [event] = parked.pending
    handle = stack.temporal.get_workflow_handle(f"amocrm-lead-{lead_id}")
    redelivery = dataclasses.replace(event, item={"flood": "x" * 600_000})
    for _ in range(14):  # repeats are dropped, but each is an event in the history
        await handle.signal(AmoEntityWorkflow.event, redelivery)

    state = await wait_entity(stack, lead_id, lambda state: state.runs > 1)
    assert state.parked_event_key == event.dedup_key and state.duplicates_dropped == 14
    assert len(forwards_for(stack, lead_id)) == 1, "the new run waits for the operator first"

    refusing_receiver(200)
    await handle.signal(AmoEntityWorkflow.retry)

    async def delivered() -> bool:
        return len(forwards_for(stack, lead_id)) == 2

    await eventually(delivered)
