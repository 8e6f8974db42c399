"""Recorded shapes of real amoCRM webhooks and API answers through our parsers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from amocrm.client import CONTACTS_PATH, _next_page
from amocrm.models import parse_contact, parse_lead
from webhooks.decoder import decode_webhook
from webhooks.entity_events import entity_event

FIXTURES = Path(__file__).parent / "fixtures" / "amocrm"
FORM = "application/x-www-form-urlencoded"


def wire_body(name: str) -> bytes:
    """The fixture's pairs, percent-encoded the way amoCRM posts them."""
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines()
    return urlencode([tuple(line.split("=", 1)) for line in lines if line]).encode()


def answer(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("fixture", "entity", "action", "entity_id"),
    [
        ("webhook-lead-status.form", "leads", "status", 27754599),
        ("webhook-lead-update.form", "leads", "update", 27754599),
        # Items whose own id is not the entity's: routed by the id they carry.
        ("webhook-lead-note.form", "leads", "note", 27754599),
        ("webhook-contact-call-note.form", "contacts", "note", 93589657),
        ("webhook-chat-message.form", "leads", "message", 27754599),
        ("webhook-chat-message-talk-only.form", "talks", "message", 101),
        ("webhook-unsorted-add.form", "leads", "unsorted", 28455371),
    ],
)
def test_each_recorded_webhook_names_the_entity_it_is_about(
    fixture: str, entity: str, action: str, entity_id: int
) -> None:
    decoded = decode_webhook(wire_body(fixture), FORM)

    assert decoded.problems == ()
    assert (decoded.account_id, decoded.account_subdomain) == (31250001, "school")
    [event] = decoded.events
    assert (event.entity, event.action, event.entity_id) == (entity, action, entity_id)
    routed = entity_event(event, source="webhook:test", received_at="t")
    assert routed is not None and routed.workflow_id.endswith(f"-{entity_id}")


def test_two_chat_messages_in_one_talk_are_two_events_and_a_redelivery_is_one() -> None:
    first = decode_webhook(wire_body("webhook-chat-message.form"), FORM).events[0]
    again = decode_webhook(wire_body("webhook-chat-message.form"), FORM).events[0]
    other_body = wire_body("webhook-chat-message.form").replace(b"a0ce13c7", b"b1df24d8")
    other = decode_webhook(other_body, FORM).events[0]
    assert first.dedup_key == again.dedup_key != other.dedup_key


def test_a_contacts_page_gives_contacts_and_a_next_link_on_our_own_host() -> None:
    page = answer("api-contacts-page-1.json")
    [contact] = [parse_contact(raw) for raw in page["_embedded"]["contacts"]]
    assert contact.phones == ["+7 (777) 111-22-33"] and contact.lead_ids == [27754599]
    assert _next_page(page, CONTACTS_PATH) == (
        "/api/v4/contacts?query=7771112233&with=leads&limit=250&page=2"
    )

    last = answer("api-contacts-last-page.json")
    assert _next_page(last, CONTACTS_PATH) is None
    [duplicate] = [parse_contact(raw) for raw in last["_embedded"]["contacts"]]
    assert duplicate.phones == [] and duplicate.lead_ids == []


def test_a_next_link_to_another_list_is_not_followed() -> None:
    page = answer("api-contacts-page-1.json")
    page["_links"]["next"]["href"] = "https://evil.example/api/v4/leads?page=2"
    assert _next_page(page, CONTACTS_PATH) is None


def test_a_lead_read_with_its_contacts() -> None:
    lead = parse_lead(answer("api-lead-with-contacts.json"))
    assert (lead.id, lead.status_id, lead.pipeline_id, lead.is_open) == (
        27754599,
        59936206,
        7173574,
        True,
    )
