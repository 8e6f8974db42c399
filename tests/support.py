"""Helpers for tests that drive the real stack."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from temporalio.client import Client

from cli.devstack import temporal_dev_server_command, wait_for_port
from leadrelay.settings import Settings

MapForm = Callable[[str, int], Awaitable[None]]
"""The `extra_form` fixture: map a form name to a pipeline in the forms file."""


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """The downstream service that forwarded events go to: it records what arrives."""

    def __init__(self, answer_status: int = 200) -> None:
        self.received: list[Received] = []
        self.answer_status = answer_status
        self.app = FastAPI()
        self.app.post("/events")(self._record)

    async def _record(self, request: Request) -> Response:
        self.received.append(Received(dict(request.headers), await request.body()))
        return Response(status_code=self.answer_status)

    def json_bodies(self) -> list[dict[str, Any]]:
        return [json.loads(item.body) for item in self.received]


@dataclass
class Stack:
    temporal: Client
    api: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    settings: Settings
    forms_path: Path
    forms_text: str
    receiver: Receiver
    api_url: str
    restart_workers: Callable[[], Awaitable[None]]

    async def sandbox_state(self) -> dict[str, Any]:
        return (await self.sandbox.get("/_sandbox/state")).json()

    async def sandbox_stats(self, since: float | None = None) -> dict[str, Any]:
        params = {"since": since} if since is not None else {}
        return (await self.sandbox.get("/_sandbox/stats", params=params)).json()

    async def sandbox_requests(self, since: float | None = None) -> list[dict[str, Any]]:
        params = {"since": since} if since is not None else {}
        return (await self.sandbox.get("/_sandbox/requests", params=params)).json()

    async def set_faults(self, **faults: Any) -> None:
        (await self.sandbox.post("/_sandbox/faults", json=faults)).raise_for_status()

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.admin_token}"}

    async def lead_response(self, lead_key: str) -> httpx.Response:
        return await self.api.get(f"/api/leads/{lead_key}", headers=self.admin_headers)

    async def lead_view(self, lead_key: str) -> dict[str, Any]:
        response = await self.lead_response(lead_key)
        response.raise_for_status()
        return response.json()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 60.0, interval: float = 0.3
) -> None:
    """Wait for a condition of the real system; the timeout is a hang guard, not a target."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s: {check.__name__}")
        await asyncio.sleep(interval)


class DevServer:
    """A persistent Temporal dev server this test may stop and start again."""

    def __init__(self, db: Path, *, register_search_attributes: bool = True) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._command = temporal_dev_server_command(
            "127.0.0.1",
            self.port,
            db,
            ui_port=None,
            register_search_attributes=register_search_attributes,
        )
        self._process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *self._command, stdout=asyncio.subprocess.DEVNULL
        )
        await asyncio.to_thread(wait_for_port, "127.0.0.1", self.port, "Temporal")

    async def stop(self) -> None:
        assert self._process is not None
        self._process.terminate()
        await asyncio.wait_for(self._process.wait(), 30)
