"""The README's Operations commands, run with the real `temporal` CLI against the dev server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import TEMPORAL_BIN
from tests.support import DevServer, MapForm, Stack, eventually
from tests.test_pipeline import leads_of, notes_of, wait_processed


async def temporal_cli(stack: Stack, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(TEMPORAL_BIN),
        *args,
        "--address",
        stack.settings.temporal_address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"temporal {' '.join(args)}: {err.decode()}"
    return out.decode()


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


async def test_failed_leads_are_listed_and_batch_retried(
    clean_sandbox: Stack, extra_form: MapForm, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    await extra_form("cli-broken", 1)
    phones = [new_phone() for _ in range(2)]
    for phone in phones:
        await stack.api.post("/api/landing/cli-broken", json={"phone": phone})
    ours = " OR ".join(f'LeadKey="{phone}"' for phone in phones)
    failed_query = f'LeadState="failed" AND ({ours})'

    async def both_failed() -> bool:
        return sorted(await listed(stack, failed_query)) == sorted(f"lead-{p}" for p in phones)

    await eventually(both_failed)
    await extra_form("cli-broken", 10350882)
    await temporal_cli(
        stack, "workflow", "signal", "--query", failed_query, "--name", "retry",
        "--reason", "pipeline fixed in forms file", "--yes",
    )  # fmt: skip
    for phone in phones:
        await wait_processed(stack, phone, 1)
    state = await stack.sandbox_state()
    assert all(len(leads_of(state, phone[1:])) == 1 for phone in phones)


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


async def test_admin_command_registers_search_attributes_on_a_bare_server(tmp_path: Path) -> None:
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
    finally:
        await server.stop()
