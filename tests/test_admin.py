"""Admin endpoints change state outside Temporal's tools, so they need ADMIN_TOKEN."""

from __future__ import annotations

import base64

import httpx
import pytest

from api.app import create_app as create_api
from leadrelay.events import RawWebhook
from sandbox.server import serve_in_thread
from tests.conftest import ADMIN_TOKEN, WEBHOOK_TOKEN
from tests.support import Stack, eventually
from workflows.raw_webhook import RawWebhookWorkflow
from workflows.starts import raw_webhook_workflow_id

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
async def test_admin_endpoints_refuse_without_the_token(stack: Stack, headers: dict) -> None:
    for method, path in [
        ("GET", "/api/admin/outbox"),
        ("POST", "/api/admin/outbox/drain"),
        ("POST", "/api/admin/raw-webhooks/amocrm-raw-x/reparse"),
    ]:
        response = await stack.api.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path)


async def test_admin_is_off_when_no_token_is_configured(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"admin_token": None})
    with serve_in_thread(create_api(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as api:
            anonymous = await api.get("/api/admin/outbox")
            guessing = await api.get("/api/admin/outbox", headers={"Authorization": "Bearer None"})
    assert anonymous.status_code == guessing.status_code == 401


async def test_outbox_listing_and_raw_webhook_reparse(stack: Stack) -> None:
    listing = await stack.api.get("/api/admin/outbox", headers=ADMIN)
    assert listing.status_code == 200 and listing.json()["depth"] == 0
    assert (await stack.api.post("/api/admin/outbox/drain", headers=ADMIN)).status_code == 200

    body = b"not a webhook at all \xff"
    kept = await stack.api.post(
        "/api/amocrm/admin-test", params={"token": WEBHOOK_TOKEN}, content=body
    )
    assert kept.json()["kept_raw"] is True
    raw = RawWebhook("admin-test", base64.b64encode(body).decode(), None, "", [])
    workflow_id = raw_webhook_workflow_id(raw)
    response = await stack.api.post(f"/api/admin/raw-webhooks/{workflow_id}/reparse", headers=ADMIN)
    assert response.status_code == 202
    handle = stack.temporal.get_workflow_handle(workflow_id)

    async def reparsed() -> bool:
        return (await handle.query(RawWebhookWorkflow.status))["reparses"] == 1

    await eventually(reparsed)
