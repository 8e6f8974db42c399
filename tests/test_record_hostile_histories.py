"""Histories of the hostile-traffic scenarios (issue 8), recorded for `test_replay.py`.

`LEADRELAY_RECORD_HISTORIES=1 .venv/bin/pytest tests/test_record_hostile_histories.py`
writes only the histories that are not in `tests/histories/` yet.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from urllib.parse import urlencode

import pytest

from leadrelay.events import entity_workflow_id
from tests.conftest import EXPRESS_PIPELINE, PROFTEST_PIPELINE, WEBHOOK_TOKEN
from tests.support import Stack, eventually
from tests.test_amocrm_answers import AMO, phone_field
from tests.test_forward_signing import give_up_rule, refusing_receiver  # noqa: F401 (fixtures)
from tests.test_person_bounds import _flood_with_repeats, _wait_state
from tests.test_pipeline import wait_processed
from tests.test_replay import HISTORIES, RECORDING
from tests.test_webhooks import (
    HOOK,
    entity_state,
    move_lead,
    new_express_lead,
    subscribe_hook,
    wait_entity,
)
from workflows.amocrm_entity import AmoEntityWorkflow
from workflows.lead import LeadWorkflow


@pytest.mark.skipif(not RECORDING, reason="set LEADRELAY_RECORD_HISTORIES=1 to record")
async def test_record_hostile_traffic_histories(
    clean_sandbox: Stack,
    new_phone: Callable[[], str],
    refusing_receiver: Callable[[int], None],  # noqa: F811
    give_up_rule: None,  # noqa: F811
) -> None:
    stack = clean_sandbox
    recorded: dict[str, str] = {}  # file name -> workflow id

    deleted = await new_express_lead(stack, new_phone())
    (await stack.sandbox.delete(f"/_sandbox/leads/{deleted}")).raise_for_status()
    hook = urlencode(
        {
            "leads[status][0][id]": str(deleted),
            "leads[status][0][status_id]": "142",
            "leads[status][0][pipeline_id]": str(EXPRESS_PIPELINE),
        }
    )
    await stack.api.post(
        f"/api/amocrm/{HOOK}",
        params={"token": WEBHOOK_TOKEN},
        content=hook,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    await wait_entity(
        stack, deleted, lambda state: any(a.outcome == "lead deleted" for a in state.actions)
    )
    recorded["entity-lead-deleted"] = entity_workflow_id("leads", deleted)

    await subscribe_hook(stack)
    refusing_receiver(503)
    lost = await new_express_lead(stack, new_phone())
    await move_lead(stack, lost, 143)

    await wait_entity(stack, lost, lambda state: state.forwards_dead_lettered == 1)
    await asyncio.sleep(2)
    recorded["entity-forward-dead-letter"] = entity_workflow_id("leads", lost)
    refusing_receiver(200)

    paged = new_phone()
    seeded = await stack.sandbox.post(
        "/_sandbox/contacts",
        json=[
            {"name": "Дубль", "custom_fields_values": phone_field(paged)},
            {"name": "Айгерим", "custom_fields_values": phone_field(paged)},
        ],
    )
    owner = seeded.json()["ids"][1]
    for name in ("старая", "открыта"):
        await stack.sandbox.post(
            "/api/v4/leads",
            headers=AMO,
            json=[{"name": name, "pipeline_id": PROFTEST_PIPELINE,
                   "_embedded": {"contacts": [{"id": owner}]}}],
        )  # fmt: skip
    await stack.set_faults(page_size=1)
    await stack.api.post("/api/landing/proftest", json={"name": "Айгерим", "phone": paged})
    await wait_processed(stack, paged, 1)
    await stack.set_faults(page_size=None)
    recorded["lead-paged-search"] = f"lead-{paged}"

    parked = new_phone()
    await stack.set_faults(
        fail_next=[{"method": "POST", "path_prefix": "/api/v4/leads/complex", "status": 400}]
    )
    answer = await stack.api.post("/api/landing/proftest", json={"phone": parked})
    workflow_id = answer.json()["workflow_id"]

    held = await _wait_state(
        stack, workflow_id, lambda state: state.parked_submission_id is not None
    )
    await _flood_with_repeats(stack, workflow_id, held.pending[0])
    await _wait_state(stack, workflow_id, lambda state: state.runs > 1)
    await stack.temporal.get_workflow_handle(workflow_id).signal(LeadWorkflow.retry)
    await wait_processed(stack, parked, 1)
    recorded["lead-parked-continued-as-new"] = workflow_id  # the run after continue-as-new

    refusing_receiver(422)
    sold = await new_express_lead(stack, new_phone())
    await move_lead(stack, sold, 142)

    event_parked = await wait_entity(stack, sold, lambda state: state.parked_event_key is not None)
    [event] = event_parked.pending
    entity = stack.temporal.get_workflow_handle(entity_workflow_id("leads", sold))
    redelivery = dataclasses.replace(event, item={"flood": "x" * 600_000})
    for _ in range(14):
        await entity.signal(AmoEntityWorkflow.event, redelivery)

    await wait_entity(stack, sold, lambda state: state.runs > 1)
    refusing_receiver(200)
    await entity.signal(AmoEntityWorkflow.retry)
    await eventually(lambda: _no_parked_event(stack, sold))
    recorded["entity-parked-continued-as-new"] = entity_workflow_id("leads", sold)

    for name, recorded_id in recorded.items():
        path = HISTORIES / f"{name}.json"
        if path.exists():
            continue
        history = await stack.temporal.get_workflow_handle(recorded_id).fetch_history()
        path.write_text(history.to_json(), encoding="utf-8")


async def _no_parked_event(stack: Stack, lead_id: int) -> bool:
    state = await entity_state(stack, lead_id)
    return state.parked_event_key is None and not state.pending
