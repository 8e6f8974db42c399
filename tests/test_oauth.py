"""amoCRM OAuth2: the token store, refreshes before expiry and after a 401, one refresh at a
time across processes, and the keep-alive schedule, against the sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import ScheduleActionStartWorkflow, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from amocrm.auth import OAuthApp, OAuthTokens, code_grant, refresh_grant
from amocrm.client import AmoClient
from amocrm.errors import AmoAuthError
from amocrm.token_store import FileTokenStore, TokenPair
from leadrelay.settings import WORKFLOW_TASK_QUEUE, Settings
from sandbox.app import SandboxSettings
from sandbox.app import create_app as create_sandbox
from sandbox.server import serve_in_thread
from tests.conftest import ONE_PARTITION, TEMPORAL_BIN
from worker import amo_client, create_workers
from workflows.schedules import TOKEN_KEEPALIVE_SCHEDULE_ID, ensure_token_keepalive_schedule
from workflows.token_keepalive import TokenKeepAliveInput, TokenKeepAliveWorkflow

APP = OAuthApp("leadrelay-test", "test-secret", "https://school.example.kz/oauth")
FIXED_TOKEN = "fixed-token"
FIRST_REFRESH = "first-refresh-token"
CLIENT_RPS = 50.0  # the sandbox here has no rate limit to speak of; keep the tests quick
PIPELINES = "/api/v4/leads/pipelines"
HISTORIES = Path(__file__).parent / "histories"
RECORDING = os.environ.get("LEADRELAY_RECORD_HISTORIES") == "1"


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with serve_in_thread(create_sandbox(SandboxSettings(FIXED_TOKEN, rate_limit=10_000))) as url:
        yield url


@pytest.fixture
async def control(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        (await http.post("/_sandbox/reset")).raise_for_status()
        yield http


async def seed(
    control: httpx.AsyncClient, *, ttl: int = 86400, revoke_old_immediately: bool = False
) -> None:
    body = {
        "client_id": APP.client_id,
        "client_secret": APP.client_secret,
        "redirect_uri": APP.redirect_uri,
        "refresh_token": FIRST_REFRESH,
        "authorization_code": "first-code",
        "access_token_ttl": ttl,
        "revoke_old_immediately": revoke_old_immediately,
    }
    (await control.post("/_sandbox/oauth", json=body)).raise_for_status()


async def grants(control: httpx.AsyncClient) -> list[dict[str, Any]]:
    return (await control.get("/_sandbox/oauth")).json()["grants"]


async def statuses(control: httpx.AsyncClient, path: str = PIPELINES) -> list[int]:
    ledger = (await control.get("/_sandbox/requests")).json()
    return [entry["status"] for entry in ledger if entry["path"] == path]


def oauth_client(
    url: str,
    store: FileTokenStore,
    *,
    first_grant: dict[str, str] | None = None,
    refresh_margin: float = 600.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AmoClient:
    tokens = OAuthTokens(
        APP,
        store,
        first_grant=first_grant or refresh_grant(FIRST_REFRESH),
        refresh_margin=refresh_margin,
    )
    return AmoClient(url, tokens, requests_per_second=CLIENT_RPS, transport=transport)


class DiskCheckingTransport(httpx.AsyncHTTPTransport):
    """Real HTTP that notes, for each API call, the token sent and the one on disk just then."""

    def __init__(self, store_path: Path) -> None:
        super().__init__()
        self.store_path = store_path
        self.sent: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme == "Bearer":
            on_disk = json.loads(self.store_path.read_text(encoding="utf-8"))["access_token"]
            self.sent.append((token, on_disk))
        return await super().handle_async_request(request)


class UnlockedStore(FileTokenStore):
    """The file store without its cross-process lock: what the lock is there to prevent."""

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


# --- the store ----------------------------------------------------------------------------


async def test_the_file_store_is_private_atomic_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "data" / "tokens.json"
    first = TokenPair("access-1", "refresh-1", expires_at=2_000_000_000, updated_at=1_900_000_000)
    second = TokenPair("access-2", "refresh-2", expires_at=2_000_086_400, updated_at=1_900_086_400)
    await FileTokenStore(path).save(first)
    await FileTokenStore(path).save(second)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert await FileTokenStore(path).load() == second
    assert set(json.loads(path.read_text())) == {
        "access_token",
        "refresh_token",
        "expires_at",
        "updated_at",
    }
    assert [p.name for p in path.parent.iterdir()] == ["tokens.json"], "a temp file was left"
    assert await FileTokenStore(tmp_path / "absent.json").load() is None


# --- the sandbox's token endpoint -----------------------------------------------------------


@pytest.mark.parametrize(("revoke_old_immediately", "reuse_status"), [(False, 200), (True, 400)])
async def test_the_sandbox_rotates_refresh_tokens(
    control: httpx.AsyncClient, revoke_old_immediately: bool, reuse_status: int
) -> None:
    await seed(control, ttl=60, revoke_old_immediately=revoke_old_immediately)

    async def refresh(token: str) -> httpx.Response:
        body = {**refresh_grant(token), "client_id": APP.client_id}
        body |= {"client_secret": APP.client_secret, "redirect_uri": APP.redirect_uri}
        return await control.post("/oauth2/access_token", json=body)

    first = await refresh(FIRST_REFRESH)
    assert first.status_code == 200
    pair = first.json()
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 60
    # Kommo: the old refresh token works until the new one is used; amoCRM (ru): never again.
    assert (await refresh(FIRST_REFRESH)).status_code == reuse_status
    assert (await refresh(pair["refresh_token"])).status_code == 200
    revoked = await refresh(FIRST_REFRESH)
    assert revoked.status_code == 400
    assert revoked.json()["hint"] == "Token has been revoked"

    async def call_with(token: str) -> int:
        answer = await control.get(PIPELINES, headers={"Authorization": f"Bearer {token}"})
        return answer.status_code

    assert [await call_with(pair["access_token"]), await call_with(FIXED_TOKEN)] == [200, 200]
    (await control.post("/_sandbox/oauth/expire")).raise_for_status()
    assert [await call_with(pair["access_token"]), await call_with(FIXED_TOKEN)] == [401, 200]
    assert (await control.get("/_sandbox/oauth")).json()["refreshes"] == 2 + (reuse_status == 200)


# --- the client -------------------------------------------------------------------------------


async def test_a_new_pair_is_on_disk_before_it_is_used(
    control: httpx.AsyncClient, sandbox_url: str, tmp_path: Path
) -> None:
    await seed(control)
    path = tmp_path / "tokens.json"
    transport = DiskCheckingTransport(path)
    store = FileTokenStore(path)
    async with oauth_client(
        sandbox_url, store, first_grant=code_grant("first-code"), transport=transport
    ) as amo:
        await amo.main_pipeline_id()  # exchanges the authorization code first
        first = await store.load()
        (await control.post("/_sandbox/oauth/expire")).raise_for_status()
        await amo.main_pipeline_id()  # 401, refresh, retry
    second = await store.load()
    assert first is not None and second is not None
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token
    assert [(g["grant_type"], g["status"]) for g in await grants(control)] == [
        ("authorization_code", 200),
        ("refresh_token", 200),
    ]
    sent = [token for token, _ in transport.sent]
    assert sent == [first.access_token, first.access_token, second.access_token]
    assert all(token == on_disk for token, on_disk in transport.sent)


async def test_a_401_refreshes_once_and_retries_once(
    control: httpx.AsyncClient, sandbox_url: str, tmp_path: Path
) -> None:
    await seed(control)
    async with oauth_client(sandbox_url, FileTokenStore(tmp_path / "tokens.json")) as amo:
        await amo.main_pipeline_id()
        (await control.post("/_sandbox/oauth/expire")).raise_for_status()
        await amo.main_pipeline_id()
        assert await statuses(control) == [200, 401, 200]

        # A 401 that a fresh token does not cure is final: one refresh, one retry, no loop.
        script = {"method": "GET", "path_prefix": PIPELINES, "status": 401, "times": 2}
        (await control.post("/_sandbox/faults", json={"fail_next": [script]})).raise_for_status()
        with pytest.raises(AmoAuthError) as raised:
            await amo.main_pipeline_id()
    assert raised.value.status == 401
    assert await statuses(control) == [200, 401, 200, 401, 401]
    assert [g["grant_type"] for g in await grants(control)] == ["refresh_token"] * 3


async def test_a_revoked_refresh_token_asks_the_operator_to_reauthorize(
    control: httpx.AsyncClient, sandbox_url: str, tmp_path: Path
) -> None:
    await seed(control, revoke_old_immediately=True)
    async with oauth_client(sandbox_url, FileTokenStore(tmp_path / "first.json")) as amo:
        await amo.main_pipeline_id()
    # A second deployment started from the same, now spent, refresh token.
    async with oauth_client(sandbox_url, FileTokenStore(tmp_path / "second.json")) as amo:
        with pytest.raises(AmoAuthError) as raised:
            await amo.main_pipeline_id()
    message = str(raised.value)
    assert "Token has been revoked" in message
    assert "re-authorize" in message
    assert raised.value.status == 400


async def refresh_count_through_expiry(
    control: httpx.AsyncClient, sandbox_url: str, stores: list[FileTokenStore]
) -> tuple[list[dict[str, Any]], list[object]]:
    """20 calls from two "processes" sharing one store, just after its access token expired.

    Returns the grants made during those calls, and each call's result or exception.
    """
    ttl, margin = 2, 1.0
    await seed(control, ttl=ttl, revoke_old_immediately=True)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(oauth_client(sandbox_url, store, refresh_margin=margin))
            for store in stores
        ]
        for amo in clients:  # both processes now hold the first access token in memory
            await amo.main_pipeline_id()
        pair = await stores[0].load()
        assert pair is not None
        await asyncio.sleep(max(0.0, pair.expires_at + 0.5 - time.time()))
        before = len(await grants(control))
        results = await asyncio.gather(
            *(clients[n % len(clients)].main_pipeline_id() for n in range(20)),
            return_exceptions=True,
        )
    return (await grants(control))[before:], results


async def test_twenty_calls_from_two_processes_refresh_once(
    control: httpx.AsyncClient, sandbox_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    made, results = await refresh_count_through_expiry(
        control, sandbox_url, [FileTokenStore(path), FileTokenStore(path)]
    )
    assert [(g["grant_type"], g["status"]) for g in made] == [("refresh_token", 200)]
    assert all(isinstance(result, int) for result in results), results


async def test_without_the_cross_process_lock_two_processes_revoke_each_other(
    control: httpx.AsyncClient, sandbox_url: str, tmp_path: Path
) -> None:
    """The test above can fail: without the lock each process refreshes the same token."""
    path = tmp_path / "tokens.json"
    made, results = await refresh_count_through_expiry(
        control, sandbox_url, [UnlockedStore(path), UnlockedStore(path)]
    )
    refreshes = [g["status"] for g in made if g["grant_type"] == "refresh_token"]
    assert len(refreshes) >= 2 and 400 in refreshes, refreshes
    assert any(isinstance(result, AmoAuthError) for result in results)


# --- the keep-alive schedule, workflow and activity on a Temporal server of their own ---------


@pytest.fixture(scope="module")
async def keepalive_env() -> AsyncIterator[WorkflowEnvironment]:
    # Not the session's server: its workers poll the same queues with a long-lived token.
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_BIN),
        dev_server_extra_args=ONE_PARTITION,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def test_the_keepalive_refreshes_only_a_pair_older_than_the_threshold(
    keepalive_env: WorkflowEnvironment,
    control: httpx.AsyncClient,
    sandbox_url: str,
    tmp_path: Path,
) -> None:
    await seed(control)
    config = keepalive_env.client.service_client.config
    settings = Settings(
        amocrm_base_url=sandbox_url,
        amocrm_access_token=None,
        amocrm_client_id=APP.client_id,
        amocrm_client_secret=APP.client_secret,
        amocrm_redirect_uri=APP.redirect_uri,
        amocrm_refresh_token=FIRST_REFRESH,
        amocrm_token_store=tmp_path / "tokens.json",
        amocrm_token_keepalive_days=7,
        temporal_address=config.target_host,
        temporal_namespace=keepalive_env.client.namespace,
    )
    client = keepalive_env.client
    await ensure_token_keepalive_schedule(client, settings)
    schedule = await client.get_schedule_handle(TOKEN_KEEPALIVE_SCHEDULE_ID).describe()
    assert schedule.schedule.spec.intervals[0].every == timedelta(days=1)
    action = schedule.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == TokenKeepAliveWorkflow.__name__
    assert action.task_queue == WORKFLOW_TASK_QUEUE

    async def keep_alive(max_age: timedelta, workflow_id: str) -> bool:
        handle: WorkflowHandle[Any, bool] = await client.start_workflow(
            TokenKeepAliveWorkflow.run,
            TokenKeepAliveInput(max_age_seconds=max_age.total_seconds()),
            id=workflow_id,
            task_queue=WORKFLOW_TASK_QUEUE,
        )
        return await handle.result()

    async with AsyncExitStack() as stack:
        executor = stack.enter_context(ThreadPoolExecutor(max_workers=2))
        http = await stack.enter_async_context(httpx.AsyncClient())
        amo = await stack.enter_async_context(amo_client(settings))
        for worker in create_workers(client, settings, amo, http, executor):
            await stack.enter_async_context(worker)
        await amo.main_pipeline_id()  # the first grant, from AMOCRM_REFRESH_TOKEN
        assert await keep_alive(timedelta(days=7), "keepalive-young") is False
        # Stored times are whole seconds, so a threshold of 2 s means "older than 1-2 s".
        await asyncio.sleep(2.1)
        assert await keep_alive(timedelta(seconds=2), "keepalive-old") is True
        assert await keep_alive(timedelta(seconds=2), "keepalive-fresh-again") is False
    assert [g["grant_type"] for g in await grants(control)] == ["refresh_token"] * 2
    if RECORDING:
        history = await client.get_workflow_handle("keepalive-old").fetch_history()
        (HISTORIES / "token-keepalive-refreshed.json").write_text(history.to_json())
