"""Lone UTF-16 surrogates from amoCRM, over HTTP: in a webhook body (JSON-escaped or
percent-encoded), in an answer of amoCRM's API, and in an event stored before they were
replaced. Each is accepted, acted on, and forwarded as valid UTF-8 with U+FFFD."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from temporalio.client import Client
from temporalio.converter import DataConverter

from leadrelay.events import EntityEvent
from tests.conftest import EXPRESS_PIPELINE, SANDBOX_TOKEN, WEBHOOK_TOKEN
from tests.support import Stack, eventually
from tests.test_webhooks import HOOK, move_lead
from workflows.starts import deliver_entity_event

FORM_BODY = (
    "leads[status][0][id]={lead}&leads[status][0][name]={name}%ED%A0%BD"
    "&leads[status][0][status_id]=142&leads[status][0][pipeline_id]={pipeline}"
    "&leads[status][0][old_status_id]=1&leads[status][0][last_modified]={modified}"
)


async def lead_named_with_a_surrogate(stack: Stack, phone: str) -> int:
    """An express lead whose name amoCRM stores, and echoes, with a lone surrogate."""
    contact = {
        "first_name": "Ержан",
        "custom_fields_values": [
            {"field_code": "PHONE", "values": [{"value": phone, "enum_code": "MOB"}]}
        ],
    }
    lead = {
        "name": "Курс \ud83d",
        "pipeline_id": EXPRESS_PIPELINE,
        "_embedded": {"contacts": [contact]},
    }
    response = await stack.sandbox.post(
        "/api/v4/leads/complex",
        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}", "Content-Type": "application/json"},
        content=json.dumps([lead]).encode(),  # ASCII, with the surrogate escaped
    )
    response.raise_for_status()
    lead_id = int(response.json()[0]["id"])
    await move_lead(stack, lead_id, 142, emit=False)
    return lead_id


async def forwarded_for(stack: Stack, lead_id: int) -> dict[str, Any]:
    """The forwarded body, which must be valid UTF-8 JSON."""

    def ours() -> list[bytes]:
        return [
            item.body
            for item in stack.receiver.received
            if f'"entity_id": {lead_id}'.encode() in item.body
        ]

    async def forwarded() -> bool:
        return bool(ours())

    await eventually(forwarded)
    [body] = ours()
    return dict(json.loads(body.decode("utf-8")))


def json_body(lead_id: int, modified: int) -> str:
    """As a hand-written caller sends it: the name's lone surrogate escaped, `\\ud83d`."""
    item = {
        "id": str(lead_id),
        "name": "Экспресс \ud83d",
        "status_id": "142",
        "pipeline_id": str(EXPRESS_PIPELINE),
        "old_status_id": "1",
        "last_modified": str(modified),
    }
    return json.dumps({"leads": {"status": [item]}})


def form_body(lead_id: int, modified: int) -> str:
    """As amoCRM's PHP sends a name holding a lone surrogate's bytes: `%ED%A0%BD`."""
    name = quote("Экспресс ")
    return FORM_BODY.format(lead=lead_id, name=name, pipeline=EXPRESS_PIPELINE, modified=modified)


@pytest.mark.parametrize(
    ("make_body", "content_type"),
    [(json_body, "application/json"), (form_body, "application/x-www-form-urlencoded")],
    ids=["json-escape", "percent-encoded"],
)
async def test_a_webhook_with_a_lone_surrogate_is_accepted_and_forwarded_with_replacement(
    clean_sandbox: Stack,
    new_phone: Callable[[], str],
    make_body: Callable[[int, int], str],
    content_type: str,
) -> None:
    stack = clean_sandbox
    lead_id = await lead_named_with_a_surrogate(stack, new_phone())
    body = make_body(lead_id, int(time.time()))
    response = await stack.api.post(
        f"/api/amocrm/{HOOK}",
        params={"token": WEBHOOK_TOKEN},
        content=body.encode(),
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 200, response.text
    assert response.json()["events"] == 1
    assert not response.json()["kept_raw"], response.json()["problems"]

    forward = await forwarded_for(stack, lead_id)
    assert forward["event"]["item"]["name"] == "Экспресс \ufffd"
    # The lead as the amoCRM client read it back: amoCRM echoed the surrogate.
    assert forward["lead"]["name"] == "Курс \ufffd"


async def test_an_event_stored_with_a_lone_surrogate_is_forwarded_as_utf8(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    """An event that reached Temporal before webhooks replaced surrogates: the SDK's own
    converter keeps one escaped in the history, and the workflow reads it back."""
    stack = clean_sandbox
    lead_id = await lead_named_with_a_surrogate(stack, new_phone())
    escaping = Client(**{**stack.temporal.config(), "data_converter": DataConverter.default})
    event = EntityEvent(
        dedup_key=f"leads:{lead_id}:status:142:{time.time_ns()}",
        source=f"webhook:{HOOK}",
        entity="leads",
        action="status",
        entity_id=lead_id,
        status_id=142,
        pipeline_id=EXPRESS_PIPELINE,
        old_status_id=1,
        last_modified=int(time.time()),
        item={"id": str(lead_id), "name": "Старое \ud83d"},
    )
    await deliver_entity_event(escaping, stack.settings, event)

    forward = await forwarded_for(stack, lead_id)
    assert forward["event"]["item"]["name"] == "Старое \ufffd"
