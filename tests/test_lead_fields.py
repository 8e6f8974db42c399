"""Issue 9 on the real stack: one contact per person, UTM first touch, form fields by type,
responsible managers, and fields amoCRM refuses, each counted in requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from leadrelay.forms import FormSpec
from sandbox.seed import (
    AGE_FIELD_ID,
    CITY_FIELD_ID,
    CONSENT_FIELD_ID,
    CONSULTATION_DATE_FIELD_ID,
    COURSE_FIELD_ID,
    FORMAT_FIELD_ID,
    INTERESTS_FIELD_ID,
    LANDING_PAGE_FIELD_ID,
    LANGUAGE_FIELD_ID,
    MANAGER_COMMENT_FIELD_ID,
    PAYMENT_METHOD_FIELD_ID,
    UTM_FIELD_IDS,
)
from tests.conftest import EXPRESS_PIPELINE, SANDBOX_TOKEN
from tests.support import Stack, eventually
from tests.test_pipeline import notes_of, wait_processed
from tests.test_priorities import CATALOGUE_ACTIVITIES, amocrm_activities
from tests.test_webhooks import forwards_for, move_lead, subscribe_hook, wait_handled

MANAGERS = [5001, 5002, 5003]
FIELDS_FORMS = f"""
[utm]
utm_source = {UTM_FIELD_IDS["utm_source"]}
utm_medium = {UTM_FIELD_IDS["utm_medium"]}
utm_campaign = {UTM_FIELD_IDS["utm_campaign"]}
utm_content = {UTM_FIELD_IDS["utm_content"]}
utm_term = {UTM_FIELD_IDS["utm_term"]}

[forms.course]
pipeline_id = {EXPRESS_PIPELINE}
status_id = 54435014
tags = ["course"]
lead_name = "Курс: {{name}}"
responsible_users = {MANAGERS}
price_field = "amount"

[forms.course.lead_fields]
{PAYMENT_METHOD_FIELD_ID} = "paymentMethod"
{COURSE_FIELD_ID} = "course"
{AGE_FIELD_ID} = "age"
{CONSENT_FIELD_ID} = "consent"
{CONSULTATION_DATE_FIELD_ID} = "consultationDate"
{FORMAT_FIELD_ID} = "format"
{INTERESTS_FIELD_ID} = "interests"
{MANAGER_COMMENT_FIELD_ID} = "comment"
{LANDING_PAGE_FIELD_ID} = "page"

[forms.course.contact_fields]
{CITY_FIELD_ID} = "city"
{LANGUAGE_FIELD_ID} = "metadata.language"

[forms.unknown-manager]
responsible_users = [5999]
"""
CATALOGUE_READS = ("/api/v4/leads/custom_fields", "/api/v4/contacts/custom_fields")
API = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}


@pytest.fixture
async def fields_stack(clean_sandbox: Stack) -> AsyncIterator[Stack]:
    """The test forms file plus UTM fields and a form with every field type."""
    stack = clean_sandbox
    text = f"{stack.forms_text}\n{FIELDS_FORMS}"
    await asyncio.to_thread(stack.forms_path.write_text, text, encoding="utf-8")
    yield stack
    await asyncio.to_thread(stack.forms_path.write_text, stack.forms_text, encoding="utf-8")


def email_of(phone: str) -> str:
    """Unique to the phone, without its digits (amoCRM's search is full-text)."""
    return f"{phone[1:].translate(str.maketrans('0123456789', 'abcdefghij'))}@example.kz"


async def post(stack: Stack, form: str, body: dict[str, Any]) -> None:
    response = await stack.api.post(f"/api/landing/{form}", json=body)
    assert response.status_code == 202, response.text


async def requests_since(stack: Stack, since: float) -> list[dict[str, Any]]:
    """amoCRM requests, without the field catalogue reads the worker caches."""
    return [r for r in await stack.sandbox_requests(since) if r["path"] not in CATALOGUE_READS]


def routes(requests: list[dict[str, Any]]) -> list[str]:
    return [f"{r['method']} {r['path']} {r['status']}" for r in requests]


def fields_by_id(entity: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    return {f["field_id"]: f["values"] for f in entity.get("custom_fields_values") or []}


def utm_of(lead: dict[str, Any]) -> dict[str, Any]:
    values = fields_by_id(lead)
    return {name: values[i][0]["value"] for name, i in UTM_FIELD_IDS.items() if i in values}


def lead_named(state: dict[str, Any], lead_id: int) -> dict[str, Any]:
    return next(lead for lead in state["leads"] if lead["id"] == lead_id)


def contact_named(state: dict[str, Any], contact_id: int) -> dict[str, Any]:
    return next(contact for contact in state["contacts"] if contact["id"] == contact_id)


def hashed_manager(key: str) -> int | None:
    return FormSpec(responsible_users=MANAGERS).responsible_user(key)


async def lead_and_contact(stack: Stack, key: str, count: int = 1) -> tuple[dict, dict, dict]:
    view = await wait_processed(stack, key, count)
    state = await stack.sandbox_state()
    return (
        lead_named(state, view["amocrm_lead_id"]),
        contact_named(state, view["amocrm_contact_id"]),
        state,
    )


async def test_a_new_lead_gets_utm_form_fields_manager_and_budget_in_one_create(
    fields_stack: Stack, new_phone: Callable[[], str]
) -> None:
    stack = fields_stack
    phone = new_phone()
    since = time.time()
    await post(
        stack,
        "course",
        {
            "name": "Айгерим",
            "phone": phone,
            "email": email_of(phone),
            "paymentMethod": "kaspi",
            "course": "Python",
            "amount": "4 990",
            "city": "Алматы",
            "utmParams": {"utm_source": "fb", "utm_medium": "cpc", "utm_campaign": "express"},
            "utm_term": "курсы",
            "metadata": {"language": "ru-RU"},
        },
    )

    lead, contact, state = await lead_and_contact(stack, phone)

    assert utm_of(lead) == {
        "utm_source": "fb",
        "utm_medium": "cpc",
        "utm_campaign": "express",
        "utm_term": "курсы",
    }
    values = fields_by_id(lead)
    assert values[PAYMENT_METHOD_FIELD_ID] == [{"value": "kaspi", "enum_id": 900101}]
    assert values[COURSE_FIELD_ID] == [{"value": "Python"}]
    assert lead["price"] == 4990
    assert lead["responsible_user_id"] == contact["responsible_user_id"] == hashed_manager(phone)
    contact_values = fields_by_id(contact)
    assert contact_values[CITY_FIELD_ID] == [{"value": "Алматы"}]
    assert contact_values[LANGUAGE_FIELD_ID][0]["value"] == "ru-RU"
    # A new person with a phone and an email: phone search, email search, one create, a note.
    assert routes(await requests_since(stack, since)) == [
        "GET /api/v4/contacts 204",
        "GET /api/v4/contacts 204",
        "POST /api/v4/leads/complex 200",
        "POST /api/v4/leads/notes 200",
    ]
    [note] = notes_of(state, lead["id"])
    assert "Не записано" not in note


async def test_phone_only_new_person_costs_three_requests(
    fields_stack: Stack, new_phone: Callable[[], str]
) -> None:
    stack = fields_stack
    phone = new_phone()
    since = time.time()
    await post(stack, "course", {"phone": phone, "utm_source": "google"})

    lead, _, _ = await lead_and_contact(stack, phone)

    assert utm_of(lead) == {"utm_source": "google"}
    assert len(await requests_since(stack, since)) == 3


async def test_an_email_only_contact_that_later_sends_a_phone_keeps_one_contact_and_lead(
    fields_stack: Stack, new_phone: Callable[[], str]
) -> None:
    stack = fields_stack
    phone = new_phone()
    email = email_of(phone)
    await post(stack, "course", {"name": "Ержан", "email": email})
    first_lead, first_contact, _ = await lead_and_contact(stack, email)
    since = time.time()

    await post(
        stack, "course", {"name": "Ержан", "phone": phone, "email": email, "utm_source": "ig"}
    )

    lead, contact, state = await lead_and_contact(stack, phone)
    assert (lead["id"], contact["id"]) == (first_lead["id"], first_contact["id"])
    assert len(state["contacts"]) == len(state["leads"]) == 1
    phones = [v["value"] for v in fields_by_id(contact)[264911]]
    assert phones == [phone]
    assert len(notes_of(state, lead["id"])) == 2
    assert utm_of(lead) == {"utm_source": "ig"}  # the first touch sent none
    assert routes(await requests_since(stack, since)) == [
        "GET /api/v4/contacts 204",
        "GET /api/v4/contacts 200",
        f"PATCH /api/v4/contacts/{contact['id']} 200",
        "GET /api/v4/leads 200",
        f"PATCH /api/v4/leads/{lead['id']} 200",
        "POST /api/v4/leads/notes 200",
    ]
    # The next search by phone finds the contact.
    found = await stack.sandbox.get("/api/v4/contacts", params={"query": phone[2:]}, headers=API)
    assert [c["id"] for c in found.json()["_embedded"]["contacts"]] == [contact["id"]]


async def test_a_known_email_with_a_new_phone_gets_the_phone_and_its_managers_lead(
    fields_stack: Stack, new_phone: Callable[[], str]
) -> None:
    stack = fields_stack
    old_phone, new = new_phone(), new_phone()
    seeded = await stack.sandbox.post(
        "/_sandbox/contacts",
        json={
            "name": "Дана",
            "responsible_user_id": 5003,
            "custom_fields_values": [
                {"field_code": "PHONE", "values": [{"value": old_phone, "enum_code": "WORK"}]},
                {"field_code": "EMAIL", "values": [{"value": email_of(old_phone)}]},
            ],
        },
    )
    contact_id = seeded.json()["id"]

    await post(stack, "course", {"name": "Дана", "phone": new, "email": email_of(old_phone)})

    lead, contact, state = await lead_and_contact(stack, new)
    assert contact["id"] == contact_id and len(state["contacts"]) == 1
    phones = [(v["value"], v["enum_code"]) for v in fields_by_id(contact)[264911]]
    assert phones == [(old_phone, "WORK"), (new, "MOB")]
    # A lead for a contact amoCRM has goes to the contact's own manager.
    assert lead["responsible_user_id"] == 5003


async def test_a_repeat_fills_only_empty_utm_fields_and_missing_tags_in_one_patch(
    fields_stack: Stack, new_phone: Callable[[], str]
) -> None:
    stack = fields_stack
    phone = new_phone()
    first = {
        "name": "Ержан",
        "phone": phone,
        "paymentMethod": "kaspi",
        "utmParams": {"utm_source": "fb", "utm_campaign": "express"},
    }
    await post(stack, "course", first)
    lead, _, _ = await lead_and_contact(stack, phone)
    # A manager types a utm_content and removes the form's tag.
    typed = await stack.sandbox.patch(
        f"/api/v4/leads/{lead['id']}",
        headers=API,
        json={
            "custom_fields_values": [
                {"field_id": UTM_FIELD_IDS["utm_content"], "values": [{"value": "manager"}]}
            ],
            "tags_to_delete": [{"name": "course"}],
        },
    )
    typed.raise_for_status()
    since = time.time()

    second = {
        **first,
        "paymentMethod": "card",
        "utmParams": {"utm_source": "google", "utm_medium": "cpc", "utm_content": "ad2"},
    }
    await post(stack, "course", second)

    lead, _, state = await lead_and_contact(stack, phone, count=2)
    assert utm_of(lead) == {
        "utm_source": "fb",
        "utm_campaign": "express",
        "utm_content": "manager",
        "utm_medium": "cpc",
    }
    assert fields_by_id(lead)[PAYMENT_METHOD_FIELD_ID][0]["value"] == "kaspi"
    assert [t["name"] for t in lead["_embedded"]["tags"]] == ["course"]
    requests = await requests_since(stack, since)
    assert routes(requests) == [
        "GET /api/v4/leads 200",
        f"PATCH /api/v4/leads/{lead['id']} 200",
        "POST /api/v4/leads/notes 200",
    ]
    assert requests[1]["body"] == {
        "tags_to_add": [{"name": "course"}],
        "custom_fields_values": [
            {"field_id": UTM_FIELD_IDS["utm_medium"], "values": [{"value": "cpc"}]}
        ],
    }
    assert len(notes_of(state, lead["id"])) == 2


async def test_every_field_type_reaches_amocrm_converted(
    fields_stack: Stack, new_phone: Callable[[], str]
) -> None:
    stack = fields_stack
    phone = new_phone()
    await post(
        stack,
        "course",
        {
            "name": "Айжан",
            "phone": phone,
            "paymentMethod": "CARD",
            "course": "Python",
            "age": "27",
            "consent": "да",
            "consultationDate": "2025-12-22",
            "format": "онлайн",
            "interests": ["Дизайн", "маркетинг"],
            "comment": "Перезвонить\nвечером",
            "page": "https://school.example/python",
            "city": "Астана",
            "metadata": {"language": "kk-KZ"},
        },
    )

    lead, contact, _ = await lead_and_contact(stack, phone)

    values = fields_by_id(lead)
    assert values[PAYMENT_METHOD_FIELD_ID] == [{"value": "card", "enum_id": 900102}]
    assert values[COURSE_FIELD_ID] == [{"value": "Python"}]
    assert values[AGE_FIELD_ID] == [{"value": "27"}]  # amoCRM answers numbers as strings
    assert values[CONSENT_FIELD_ID] == [{"value": True}]
    assert values[CONSULTATION_DATE_FIELD_ID] == [{"value": 1766361600}]
    assert values[FORMAT_FIELD_ID] == [{"value": "Онлайн", "enum_id": 900601}]
    assert values[INTERESTS_FIELD_ID] == [
        {"value": "Дизайн", "enum_id": 900702},
        {"value": "Маркетинг", "enum_id": 900703},
    ]
    assert values[MANAGER_COMMENT_FIELD_ID] == [{"value": "Перезвонить\nвечером"}]
    assert values[LANDING_PAGE_FIELD_ID] == [{"value": "https://school.example/python"}]
    contact_values = fields_by_id(contact)
    assert contact_values[CITY_FIELD_ID] == [{"value": "Астана"}]
    assert contact_values[LANGUAGE_FIELD_ID] == [{"value": "kk-KZ", "enum_id": 900402}]


async def test_a_value_that_does_not_fit_is_left_out_and_named_in_the_note(
    fields_stack: Stack, new_phone: Callable[[], str]
) -> None:
    stack = fields_stack
    phone = new_phone()
    await post(
        stack,
        "course",
        {"phone": phone, "paymentMethod": "cash", "age": "двадцать", "course": "Go"},
    )

    lead, _, state = await lead_and_contact(stack, phone)

    values = fields_by_id(lead)
    assert PAYMENT_METHOD_FIELD_ID not in values and AGE_FIELD_ID not in values
    assert values[COURSE_FIELD_ID] == [{"value": "Go"}]
    [note] = notes_of(state, lead["id"])
    assert "Не записано в поля amoCRM:" in note
    assert "- Способ оплаты: «cash» (нет такого варианта)" in note
    assert "- Возраст: «двадцать» (не число)" in note


async def test_a_field_or_manager_amocrm_refuses_is_dropped_and_the_lead_still_created(
    fields_stack: Stack, new_phone: Callable[[], str]
) -> None:
    stack = fields_stack
    warm = new_phone()  # the worker's catalogue now has the course field
    await post(stack, "course", {"phone": warm, "course": "Python"})
    await wait_processed(stack, warm, 1)
    deleted = await stack.sandbox.delete(f"/_sandbox/custom_fields/leads/{COURSE_FIELD_ID}")
    assert deleted.status_code == 204
    phone = new_phone()
    since = time.time()

    await post(stack, "course", {"phone": phone, "course": "Go", "paymentMethod": "kaspi"})

    lead, _, state = await lead_and_contact(stack, phone)
    values = fields_by_id(lead)
    assert COURSE_FIELD_ID not in values
    assert values[PAYMENT_METHOD_FIELD_ID][0]["value"] == "kaspi"
    [note] = notes_of(state, lead["id"])
    assert "- Курс: «Go» (amoCRM отклонил)" in note
    assert routes(await requests_since(stack, since)) == [
        "GET /api/v4/contacts 204",
        "POST /api/v4/leads/complex 400",
        "POST /api/v4/leads/complex 200",
        "POST /api/v4/leads/notes 200",
    ]
    view = await stack.lead_view(phone)
    assert view["step"] == "created"

    unknown_manager = new_phone()
    await post(stack, "unknown-manager", {"phone": unknown_manager})
    lead, contact, state = await lead_and_contact(stack, unknown_manager)
    assert lead["responsible_user_id"] == contact["responsible_user_id"] == 8000001
    [note] = notes_of(state, lead["id"])
    assert "- Ответственный: «5999» (amoCRM отклонил)" in note


async def test_a_catalogue_longer_than_a_page_is_read_one_request_per_activity(
    fields_stack: Stack, new_phone: Callable[[], str]
) -> None:
    stack = fields_stack
    await stack.restart_workers()  # a cold field-catalogue cache: the workflow reads it
    await stack.set_faults(page_size=3)
    phone = new_phone()
    since = time.time()
    try:
        await post(stack, "course", {"phone": phone, "course": "Python", "city": "Алматы"})
        lead, contact, _ = await lead_and_contact(stack, phone)
    finally:
        await stack.set_faults(page_size=None)

    assert fields_by_id(lead)[COURSE_FIELD_ID] == [{"value": "Python"}]
    assert fields_by_id(contact)[CITY_FIELD_ID] == [{"value": "Алматы"}]
    reads = [r for r in await stack.sandbox_requests(since) if r["path"] in CATALOGUE_READS]
    history = await stack.temporal.get_workflow_handle(f"lead-{phone}").fetch_history()
    activities = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    pages = {entity: sum(r["path"] == f"/api/v4/{entity}/custom_fields" for r in reads)
             for entity in ("leads", "contacts")}  # fmt: skip
    assert pages["leads"] >= 5 and pages["contacts"] >= 2, pages  # 14 and 4 fields, 3 a page
    assert activities.count("amocrm.read_field_catalogue_page") == len(reads)
    reads_scheduled = await amocrm_activities(stack, f"lead-{phone}")
    assert {read for read in reads_scheduled if read[0] in CATALOGUE_ACTIVITIES} == set(
        CATALOGUE_ACTIVITIES.items()
    ), "catalogue reads are background reads"


async def test_managers_are_spread_by_contact_key_and_a_returning_person_keeps_theirs(
    fields_stack: Stack, new_phone: Callable[[], str]
) -> None:
    stack = fields_stack
    by_manager: dict[int, str] = {}
    while len(by_manager) < len(MANAGERS):
        phone = new_phone()
        by_manager.setdefault(hashed_manager(phone) or 0, phone)
    for phone in by_manager.values():
        await post(stack, "course", {"phone": phone})

    leads = {}
    for manager, phone in by_manager.items():
        lead, contact, _ = await lead_and_contact(stack, phone)
        assert lead["responsible_user_id"] == contact["responsible_user_id"] == manager
        leads[manager] = lead

    # Both return after their lead was lost; one's contact was handed to another manager.
    returning, reassigned = by_manager[5001], by_manager[5002]
    for manager in (5001, 5002):
        moved = await stack.sandbox.post(
            f"/_sandbox/leads/{leads[manager]['id']}/status", json={"status_id": 143}
        )
        moved.raise_for_status()
    _, contact, _ = await lead_and_contact(stack, reassigned)
    handed = await stack.sandbox.patch(
        f"/api/v4/contacts/{contact['id']}", headers=API, json={"responsible_user_id": 5003}
    )
    handed.raise_for_status()
    for phone in (returning, reassigned):
        await post(stack, "course", {"phone": phone, "comment": "снова"})

    again, _, _ = await lead_and_contact(stack, returning, count=2)
    assert again["id"] != leads[5001]["id"] and again["responsible_user_id"] == 5001
    handed_lead, _, _ = await lead_and_contact(stack, reassigned, count=2)
    assert handed_lead["id"] != leads[5002]["id"]
    assert handed_lead["responsible_user_id"] == 5003


async def test_a_forwarded_sale_carries_the_leads_fields_by_name(
    fields_stack: Stack, new_phone: Callable[[], str]
) -> None:
    stack = fields_stack
    await subscribe_hook(stack)
    phone = new_phone()
    body = {"phone": phone, "paymentMethod": "card", "utmParams": {"utm_source": "fb"}}
    await post(stack, "course", body)
    lead, _, _ = await lead_and_contact(stack, phone)

    await move_lead(stack, lead["id"], 142)

    async def forwarded() -> bool:
        return bool(forwards_for(stack, lead["id"]))

    await eventually(forwarded)
    await wait_handled(stack, lead["id"], seen=1)  # its note and task too, before the reset
    [sale] = forwards_for(stack, lead["id"])
    assert sale["custom_fields"]["utm_source"] == "fb"
    assert sale["custom_fields"]["Способ оплаты"] == "card"
