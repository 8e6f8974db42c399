"""The README's Operations commands, run with the real `temporal` CLI against the dev server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from leadrelay.events import RawWebhook
from leadrelay.settings import AMOCRM_TASK_QUEUE
from tests.conftest import TEMPORAL_BIN, WEBHOOK_TOKEN
from tests.support import DevServer, MapForm, Stack, eventually
from tests.test_pipeline import leads_of, notes_of, wait_processed
from workflows.raw_webhook import RawWebhookWorkflow
from workflows.schedules import RECONCILE_SCHEDULE_ID
from workflows.starts import raw_webhook_workflow_id


async def run_cli(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(TEMPORAL_BIN), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"temporal {' '.join(args)}: {err.decode()}"
    return out.decode()


async def temporal_cli(stack: Stack, *args: str) -> str:
    return await run_cli(*args, "--address", stack.settings.temporal_address)


async def listed(stack: Stack, query: str) -> list[str]:
    out = await temporal_cli(stack, "workflow", "list", "--query", query, "--output", "json")
    return [execution["execution"]["workflowId"] for execution in json.loads(out or "[]")]


async def test_query_list_note_and_resync_through_the_cli(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    phone = new_phone()
    await stack.api.post("/api/landing/proftest", json={"name": "Айгерим", "phone": phone})
    view = await wait_processed(stack, phone, 1)

    out = await temporal_cli(
        stack, "workflow", "query", "-w", f"lead-{phone}", "--name", "state", "--output", "json"
    )
    state: dict[str, Any] = json.loads(out)["queryResult"][0]
    assert state["lead_id"] == view["amocrm_lead_id"] and state["step"] == "created"

    async def findable() -> bool:
        found = await listed(stack, f'LeadPhone="{phone}" AND LeadState="created"')
        return found == [f"lead-{phone}"]

    await eventually(findable)
    lead_id = str(view["amocrm_lead_id"])
    assert await listed(stack, f'AmoLeadId="{lead_id}"') == [f"lead-{phone}"]

    await temporal_cli(
        stack, "workflow", "signal", "-w", f"lead-{phone}",
        "--name", "add_note", "--input", json.dumps("Перезвонить после 18:00"),
    )  # fmt: skip

    async def noted() -> bool:
        notes = notes_of(await stack.sandbox_state(), view["amocrm_lead_id"])
        return "Перезвонить после 18:00" in notes

    await eventually(noted)

    requests_before = len(await stack.sandbox_requests())
    await temporal_cli(stack, "workflow", "signal", "-w", f"lead-{phone}", "--name", "resync")

    async def resynced() -> bool:
        return len(await stack.sandbox_requests()) >= requests_before + 2  # search, read leads

    await eventually(resynced)
    assert (await stack.lead_view(phone))["amocrm_lead_id"] == view["amocrm_lead_id"]


async def test_failed_leads_are_skipped_retried_one_and_batch_retried(
    clean_sandbox: Stack, extra_form: MapForm, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    await extra_form("cli-broken", 1)
    skipped, single, batch = phones = [new_phone() for _ in range(3)]
    for phone in phones:
        await stack.api.post("/api/landing/cli-broken", json={"phone": phone})
    ours = " OR ".join(f'LeadKey="{phone}"' for phone in phones)
    failed_query = f'LeadState="failed" AND ({ours})'

    async def all_failed() -> bool:
        return sorted(await listed(stack, failed_query)) == sorted(f"lead-{p}" for p in phones)

    await eventually(all_failed)
    await temporal_cli(stack, "workflow", "signal", "-w", f"lead-{skipped}", "--name", "skip")

    async def set_aside() -> bool:
        out = await temporal_cli(
            stack, "workflow", "query", "-w", f"lead-{skipped}", "--name", "state",
            "--output", "json",
        )  # fmt: skip
        state = json.loads(out)["queryResult"][0]
        return state["submissions_skipped"] == 1 and len(state["skipped"]) == 1

    await eventually(set_aside)
    await extra_form("cli-broken", 10350882)
    await temporal_cli(stack, "workflow", "signal", "-w", f"lead-{single}", "--name", "retry")
    await wait_processed(stack, single, 1)
    assert await listed(stack, failed_query) == [f"lead-{batch}"]
    await temporal_cli(
        stack, "workflow", "signal", "--query", failed_query, "--name", "retry",
        "--reason", "pipeline fixed in forms file", "--yes",
    )  # fmt: skip
    await wait_processed(stack, batch, 1)
    state = await stack.sandbox_state()
    assert [len(leads_of(state, phone[1:])) for phone in phones] == [0, 1, 1]


async def test_raw_webhook_reparse_and_reconcile_trigger_through_the_cli(stack: Stack) -> None:
    body = f"not a webhook {uuid.uuid4()}".encode()
    kept = await stack.api.post(
        "/api/amocrm/cli-test", params={"token": WEBHOOK_TOKEN}, content=body
    )
    assert kept.json()["kept_raw"] is True
    raw_id = raw_webhook_workflow_id(
        RawWebhook("cli-test", base64.b64encode(body).decode(), None, "", [])
    )
    await temporal_cli(stack, "workflow", "signal", "-w", raw_id, "--name", "reparse")
    handle = stack.temporal.get_workflow_handle(raw_id)

    async def reparsed() -> bool:
        return (await handle.query(RawWebhookWorkflow.status))["reparses"] == 1

    await eventually(reparsed)

    async def reconcile_runs() -> set[str]:
        query = "WorkflowType='ReconcileWorkflow'"
        return {run.run_id async for run in stack.temporal.list_workflows(query) if run.run_id}

    before = await reconcile_runs()
    await temporal_cli(stack, "schedule", "trigger", "--schedule-id", RECONCILE_SCHEDULE_ID)

    async def triggered() -> bool:
        return bool(await reconcile_runs() - before)

    await eventually(triggered)


async def test_exported_history_replays_with_the_replay_command(
    clean_sandbox: Stack, new_phone: Callable[[], str], tmp_path: Path
) -> None:
    stack = clean_sandbox
    phone = new_phone()
    await stack.api.post("/api/landing/proftest", json={"phone": phone})
    await wait_processed(stack, phone, 1)
    history = await temporal_cli(
        stack, "workflow", "show", "-w", f"lead-{phone}", "--output", "json"
    )
    exported = tmp_path / "history.json"
    await asyncio.to_thread(exported.write_text, history, encoding="utf-8")

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.replay", str(exported), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0 and out.decode().startswith("ok")

    broken = json.loads(history)
    broken["events"] = [
        event for event in broken["events"] if "activityTaskScheduledEventAttributes" not in event
    ]
    await asyncio.to_thread(exported.write_text, json.dumps(broken), encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.replay", str(exported), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 1 and "BROKEN" in out.decode()


async def test_admin_command_and_queue_pause_on_a_bare_server(tmp_path: Path) -> None:
    """A server of its own: pausing the `amocrm` queue must not stop the other tests."""
    server = DevServer(tmp_path / "bare.db", register_search_attributes=False)
    await server.start()
    try:
        command = [sys.executable, "-m", "cli.admin", "setup-search-attributes"]
        env = {**os.environ, "TEMPORAL_ADDRESS": server.address}
        for expected in ("added LeadKey", "all present"):
            process = await asyncio.create_subprocess_exec(
                *command, env=env, stdout=asyncio.subprocess.PIPE
            )
            out, _ = await process.communicate()
            assert process.returncode == 0 and out.decode().startswith(expected), out

        queue = ("--task-queue", AMOCRM_TASK_QUEUE, "--task-queue-type", "activity")
        at = ("--address", server.address)

        async def queue_limit() -> dict[str, Any]:
            out = await run_cli("task-queue", "config", "get", *queue, "--output", "json", *at)
            return dict(json.loads(out)["queueRateLimit"]["rateLimit"])

        await run_cli("task-queue", "config", "set", *queue, "--queue-rps-limit", "5", *at)
        assert await queue_limit() == {"requestsPerSecond": 5}
        await run_cli("task-queue", "config", "set", *queue, "--queue-rps-limit", "0", *at)
        assert await queue_limit() == {}, "0 requests per second: the queue is paused"
    finally:
        await server.stop()
