"""Recorded histories must replay against the current workflow code.

A change that would break running workflows fails here; make deliberate changes with
`workflow.patched`. Re-record after adding a scenario:
`LEADRELAY_RECORD_HISTORIES=1 .venv/bin/pytest tests/test_replay.py`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.support import Stack
from tests.test_faults import wait_all_processed
from tests.test_pipeline import PROFTEST_BODY, wait_processed
from worker import WORKFLOWS
from workflows.runner import workflow_runner

HISTORIES = Path(__file__).parent / "histories"
RECORDING = os.environ.get("LEADRELAY_RECORD_HISTORIES") == "1"


def recorded_histories() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def test_histories_are_recorded() -> None:
    assert len(recorded_histories()) >= 3, "tests/histories/ lost its recordings"


@pytest.mark.parametrize("path", recorded_histories(), ids=lambda path: path.stem)
async def test_recorded_history_replays(path: Path) -> None:
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    history = WorkflowHistory.from_json(f"lead-{path.stem}", text)
    await Replayer(workflows=WORKFLOWS, workflow_runner=workflow_runner()).replay_workflow(history)


@pytest.mark.skipif(not RECORDING, reason="set LEADRELAY_RECORD_HISTORIES=1 to re-record")
async def test_record_histories(clean_sandbox: Stack, new_phone: Callable[[], str]) -> None:
    stack = clean_sandbox
    scenarios: dict[str, str] = {}

    new_person = new_phone()
    await stack.api.post("/api/landing/proftest", json={**PROFTEST_BODY, "phone": new_person})
    await wait_processed(stack, new_person, 1)
    scenarios["new-person"] = new_person

    repeat = new_phone()
    for method in ("kaspi", "card", "card"):
        body = {"name": "Ержан", "phone": repeat, "paymentMethod": method}
        await stack.api.post("/api/landing/express-course", json=body)
        await asyncio.sleep(0.5)
    await wait_processed(stack, repeat, 2)
    scenarios["later-submission-and-repeat"] = repeat

    flaky = new_phone()
    await stack.set_faults(
        fail_next=[{"method": "POST", "path_prefix": "/api/v4/leads/complex", "status": 504}]
    )
    await stack.api.post("/api/landing/proftest", json={"phone": flaky})
    await wait_all_processed(stack, [flaky])
    scenarios["create-answer-lost"] = flaky

    rejected = new_phone()
    await stack.set_faults(
        fail_next=[{"method": "POST", "path_prefix": "/api/v4/leads/complex", "status": 400}]
    )
    response = await stack.api.post("/api/landing/proftest", json={"phone": rejected})
    await asyncio.sleep(3)
    await stack.temporal.get_workflow_handle(response.json()["workflow_id"]).signal("retry")
    await wait_processed(stack, rejected, 1)
    scenarios["rejected-then-retried"] = rejected

    HISTORIES.mkdir(exist_ok=True)
    for name, phone in scenarios.items():
        history = await stack.temporal.get_workflow_handle(f"lead-{phone}").fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json(), encoding="utf-8")
