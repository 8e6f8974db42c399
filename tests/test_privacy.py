"""Issue 8, failure 1: nobody outside reads a person's lead; docs and secrets stay closed."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from api.app import create_app as create_api
from leadrelay.logs import mask
from sandbox.server import serve_in_thread
from tests.conftest import WEBHOOK_TOKEN
from tests.support import Stack, eventually
from tests.test_pipeline import wait_processed


async def test_anonymous_caller_cannot_read_or_probe_a_lead(
    stack: Stack, new_phone: Callable[[], str]
) -> None:
    phone = new_phone()
    accepted = await stack.api.post("/api/landing/proftest", json={"phone": phone})
    assert accepted.status_code == 202
    await wait_processed(stack, phone, 1)

    existing = await stack.api.get(f"/api/leads/{phone}")
    unknown = await stack.api.get(f"/api/leads/{new_phone()}")
    wrong = await stack.api.get(f"/api/leads/{phone}", headers={"Authorization": "Bearer nope"})
    assert existing.status_code == unknown.status_code == wrong.status_code == 401
    assert existing.json() == unknown.json() == wrong.json()
    assert phone not in existing.text
    assert (await stack.lead_response(phone)).status_code == 200


async def test_non_ascii_tokens_are_a_401_not_a_500(stack: Stack) -> None:
    admin = await stack.api.get(
        "/api/admin/outbox", headers={"Authorization": "Bearer токен".encode()}
    )
    lead = await stack.api.get(
        "/api/leads/+77011234567", headers={"Authorization": "Bearer ключ🔑".encode()}
    )
    hook = await stack.api.post("/api/amocrm/funnel", params={"token": "секрет"}, data={"a": "1"})
    assert admin.status_code == lead.status_code == hook.status_code == 401
    right = await stack.api.post("/api/amocrm/funnel", params={"token": WEBHOOK_TOKEN}, data={})
    assert right.status_code == 200


async def test_interactive_docs_are_off_unless_turned_on(stack: Stack) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert (await stack.api.get(path)).status_code == 404
    settings = stack.settings.model_copy(update={"leadrelay_api_docs": True})
    with serve_in_thread(create_api(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as api:
            assert (await api.get("/openapi.json")).status_code == 200
            assert (await api.get("/docs")).status_code == 200


async def test_metrics_can_be_served_apart_from_the_api_port(stack: Stack, tmp_path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = stack.settings.model_copy(
        update={
            "leadrelay_api_metrics_address": f"127.0.0.1:{port}",
            "leadrelay_outbox_path": tmp_path / "outbox.sqlite3",
        }
    )
    with serve_in_thread(create_api(settings)) as url:
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/metrics")).status_code == 404

            async def served() -> bool:
                try:
                    answer = await http.get(f"http://127.0.0.1:{port}/metrics")
                except httpx.TransportError:
                    return False
                return "leadrelay_outbox_dead_letters" in answer.text

            await eventually(served, within=10)


def test_logs_mask_percent_encoded_phones_and_emails() -> None:
    line = (
        "GET /api/v4/contacts?query=aigerim%40example.com&with=leads "
        "and ?query=%2B77011234567 and phone=8%20701%20123%2045%2067"
    )
    masked = mask(line)
    assert "aigerim" not in masked and "example.com" in masked
    assert "1234567" not in masked and "123%2045%2067" not in masked
