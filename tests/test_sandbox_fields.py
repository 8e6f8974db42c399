"""The sandbox's field catalogues, users and field validation, as amoCRM has them."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.app import SandboxSettings, create_app
from sandbox.seed import (
    AGE_FIELD_ID,
    CITY_FIELD_ID,
    CONSENT_FIELD_ID,
    CONSULTATION_DATE_FIELD_ID,
    COURSE_FIELD_ID,
    FORMAT_FIELD_ID,
    INTERESTS_FIELD_ID,
    LANDING_PAGE_FIELD_ID,
    MANAGER_COMMENT_FIELD_ID,
    PAYMENT_METHOD_FIELD_ID,
    UTM_FIELD_IDS,
)
from sandbox.server import serve_in_thread
from tests.conftest import SANDBOX_TOKEN
from tests.test_sandbox import new_lead_with_contact


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with serve_in_thread(
        create_app(SandboxSettings(token=SANDBOX_TOKEN, rate_limit=10_000))
    ) as url:
        yield url


def catalogue(api: httpx.Client, entity: str) -> dict[int, dict[str, Any]]:
    response = api.get(f"/{entity}/custom_fields", params={"limit": 250})
    assert response.status_code == 200
    return {field["id"]: field for field in response.json()["_embedded"]["custom_fields"]}


def field(field_id: int, *values: dict[str, Any]) -> dict[str, Any]:
    return {"field_id": field_id, "values": list(values)}


def only_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    [item] = response.json()["validation-errors"]
    [error] = item["errors"]
    return error


def test_lead_catalogue_has_the_utm_fields_and_one_field_of_every_type(api: httpx.Client) -> None:
    leads = catalogue(api, "leads")

    assert {name: leads[field_id]["type"] for name, field_id in UTM_FIELD_IDS.items()} == {
        name: "tracking_data" for name in UTM_FIELD_IDS
    }
    assert leads[UTM_FIELD_IDS["utm_source"]]["code"] == "UTM_SOURCE"
    types = {leads[field_id]["type"] for field_id in leads}
    assert {"text", "textarea", "url", "numeric", "checkbox", "date"} <= types
    assert {"select", "radio", "multiselect"} <= types
    payment = leads[PAYMENT_METHOD_FIELD_ID]
    assert [option["value"] for option in payment["enums"]] == ["kaspi", "card", "manager"]
    assert leads[COURSE_FIELD_ID]["enums"] is None


def test_contact_catalogue_lists_phone_email_and_custom_fields(api: httpx.Client) -> None:
    contacts = catalogue(api, "contacts")

    codes = {f["code"]: f for f in contacts.values() if f["code"]}
    assert codes["PHONE"]["type"] == "multitext"
    assert "MOB" in [option["value"] for option in codes["PHONE"]["enums"]]
    assert contacts[CITY_FIELD_ID]["type"] == "text"


def test_catalogues_page_at_the_limit(api: httpx.Client) -> None:
    first = api.get("/leads/custom_fields", params={"limit": 3})

    assert len(first.json()["_embedded"]["custom_fields"]) == 3
    assert "next" in first.json()["_links"]


def test_users_are_listed_with_rights(api: httpx.Client) -> None:
    response = api.get("/users")

    users = response.json()["_embedded"]["users"]
    assert {5001, 5002, 5003} <= {user["id"] for user in users}
    assert all({"id", "name", "email", "rights"} <= set(user) for user in users)


def test_every_field_type_is_stored_with_its_name_and_choices(
    api: httpx.Client, control: httpx.Client
) -> None:
    lead = new_lead_with_contact(
        custom_fields_values=[
            field(UTM_FIELD_IDS["utm_source"], {"value": "fb"}),
            field(COURSE_FIELD_ID, {"value": "Python"}),
            field(MANAGER_COMMENT_FIELD_ID, {"value": "line 1\nline 2"}),
            field(LANDING_PAGE_FIELD_ID, {"value": "https://school.example/python"}),
            field(AGE_FIELD_ID, {"value": 27}),
            field(CONSENT_FIELD_ID, {"value": True}),
            field(CONSULTATION_DATE_FIELD_ID, {"value": 1703289600}),
            field(PAYMENT_METHOD_FIELD_ID, {"enum_id": 900102}),
            field(FORMAT_FIELD_ID, {"enum_id": 900601}),
            field(INTERESTS_FIELD_ID, {"enum_id": 900701}, {"enum_id": 900703}),
        ],
        responsible_user_id=5002,
    )
    lead["_embedded"]["contacts"][0]["responsible_user_id"] = 5002  # type: ignore[index]

    assert api.post("/leads/complex", json=[lead]).status_code == 200

    state = control.get("/state").json()
    [stored] = state["leads"]
    values = {f["field_id"]: f for f in stored["custom_fields_values"]}
    assert values[UTM_FIELD_IDS["utm_source"]]["field_name"] == "utm_source"
    assert values[UTM_FIELD_IDS["utm_source"]]["field_type"] == "tracking_data"
    assert values[PAYMENT_METHOD_FIELD_ID]["values"] == [{"value": "card", "enum_id": 900102}]
    assert [v["value"] for v in values[INTERESTS_FIELD_ID]["values"]] == [
        "Программирование",
        "Маркетинг",
    ]
    assert values[CONSENT_FIELD_ID]["values"] == [{"value": True}]
    assert stored["responsible_user_id"] == 5002
    assert state["contacts"][0]["responsible_user_id"] == 5002


@pytest.mark.parametrize(
    ("lead_changes", "path", "code"),
    [
        (
            {"custom_fields_values": [field(999999, {"value": "x"})]},
            "0.custom_fields_values.0.field_id",
            "FieldNotExpected",
        ),
        (
            {"custom_fields_values": [field(PAYMENT_METHOD_FIELD_ID, {"enum_id": 1})]},
            "0.custom_fields_values.0.values.0.enum_id",
            "NotSupportedChoice",
        ),
        (
            {"custom_fields_values": [field(AGE_FIELD_ID, {"value": "twenty"})]},
            "0.custom_fields_values.0.values.0.value",
            "InvalidType",
        ),
        ({"responsible_user_id": 4242}, "0.responsible_user_id", "NotSupportedChoice"),
    ],
    ids=["unknown-field", "bad-enum", "text-in-numeric", "unknown-user"],
)
def test_a_bad_field_or_user_rejects_the_whole_request(
    api: httpx.Client,
    control: httpx.Client,
    lead_changes: dict[str, Any],
    path: str,
    code: str,
) -> None:
    response = api.post("/leads/complex", json=[new_lead_with_contact(**lead_changes)])

    error = only_error(response)
    assert (error["path"], error["code"]) == (path, code)
    assert control.get("/state").json()["leads"] == []


def test_an_unknown_contact_field_is_not_expected(api: httpx.Client) -> None:
    lead = new_lead_with_contact()
    contact = lead["_embedded"]["contacts"][0]  # type: ignore[index]
    contact["custom_fields_values"].append(field(PAYMENT_METHOD_FIELD_ID, {"enum_id": 900101}))

    error = only_error(api.post("/leads/complex", json=[lead]))

    assert error["path"] == "0._embedded.contacts.0.custom_fields_values.2.field_id"
    assert error["code"] == "FieldNotExpected"


def test_patch_replaces_the_fields_it_names_and_keeps_the_rest(
    api: httpx.Client, control: httpx.Client
) -> None:
    lead = new_lead_with_contact(
        custom_fields_values=[
            field(UTM_FIELD_IDS["utm_source"], {"value": "fb"}),
            field(COURSE_FIELD_ID, {"value": "Python"}),
        ]
    )
    lead_id = api.post("/leads/complex", json=[lead]).json()[0]["id"]

    response = api.patch(
        f"/leads/{lead_id}",
        json={
            "custom_fields_values": [field(UTM_FIELD_IDS["utm_medium"], {"value": "cpc"})],
            "tags_to_add": [{"name": "repeat"}],
        },
    )

    assert response.status_code == 200
    [stored] = control.get("/state").json()["leads"]
    assert {f["field_name"]: f["values"][0]["value"] for f in stored["custom_fields_values"]} == {
        "utm_source": "fb",
        "Курс": "Python",
        "utm_medium": "cpc",
    }
    assert {tag["name"] for tag in stored["_embedded"]["tags"]} == {"proftest", "repeat"}


def test_patching_a_contact_phone_replaces_its_phone_values(
    api: httpx.Client, control: httpx.Client
) -> None:
    contact_id = control.post(
        "/contacts",
        json={
            "name": "Ержан",
            "custom_fields_values": [
                {"field_code": "EMAIL", "values": [{"value": "e@example.kz"}]},
                {"field_code": "PHONE", "values": [{"value": "+77011112233", "enum_code": "WORK"}]},
            ],
        },
    ).json()["id"]
    phones = [
        {"value": "+77011112233", "enum_code": "WORK"},
        {"value": "+77770001122", "enum_code": "MOB"},
    ]

    response = api.patch(
        f"/contacts/{contact_id}",
        json={"custom_fields_values": [{"field_code": "PHONE", "values": phones}]},
    )

    assert response.status_code == 200
    found = api.get("/contacts", params={"query": "7770001122"}).json()["_embedded"]["contacts"]
    assert [contact["id"] for contact in found] == [contact_id]
    by_code = {f["field_code"]: f["values"] for f in found[0]["custom_fields_values"]}
    assert [(v["value"], v["enum_code"]) for v in by_code["PHONE"]] == [
        ("+77011112233", "WORK"),
        ("+77770001122", "MOB"),
    ]
    assert by_code["EMAIL"][0]["value"] == "e@example.kz"
