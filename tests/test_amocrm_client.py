"""The amoCRM client against the sandbox over real HTTP: 429 and 403, deleted leads, pages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from amocrm.client import AmoClient
from amocrm.errors import AmoBlocked, AmoRateLimited
from tests.conftest import SANDBOX_TOKEN

SEARCH = {"method": "GET", "path_prefix": "/api/v4/contacts"}
TOO_MANY = {"title": "Too Many Requests", "status": 429}


@pytest.fixture
async def amo(sandbox_url: str, control: httpx.Client) -> AsyncIterator[AmoClient]:
    async with AmoClient(
        sandbox_url, SANDBOX_TOKEN, requests_per_second=20, block_backoff=2.0
    ) as client:
        yield client


def script(control: httpx.Client, status: int, body: object = None) -> None:
    control.post("/faults", json={"fail_next": [{**SEARCH, "status": status, "body": body}]})


def arrivals(control: httpx.Client) -> int:
    return len(control.get("/requests").raise_for_status().json())


async def test_a_429_pauses_every_request_for_its_retry_after(
    amo: AmoClient, control: httpx.Client
) -> None:
    script(control, 429, {**TOO_MANY, "retry_after": 2})
    with pytest.raises(AmoRateLimited) as refused:
        await amo.search_contacts("7771112233")
    assert refused.value.retry_after == 2

    # Another request from the same process is held back without reaching amoCRM.
    with pytest.raises(AmoRateLimited) as held:
        await amo.search_contacts("7012223344")
    assert held.value.retry_after is not None and 0 < held.value.retry_after <= 2
    assert arrivals(control) == 1

    await asyncio.sleep(held.value.retry_after)
    assert await amo.search_contacts("7012223344") == ([], None)  # 204: nobody, not an error
    assert arrivals(control) == 2


async def test_429s_without_retry_after_pause_longer_each_time(
    amo: AmoClient, control: httpx.Client
) -> None:
    waits = []
    for _ in range(2):
        script(control, 429, TOO_MANY)
        with pytest.raises(AmoRateLimited):
            await amo.search_contacts("7771112233")
        with pytest.raises(AmoRateLimited) as held:
            await amo.search_contacts("7771112233")
        assert held.value.retry_after is not None
        waits.append(held.value.retry_after)
        await asyncio.sleep(held.value.retry_after)

    assert waits[0] <= 1 < waits[1] <= 2, waits
    assert arrivals(control) == 2


async def test_a_403_pauses_every_request_for_the_block_backoff(
    amo: AmoClient, control: httpx.Client
) -> None:
    script(control, 403)
    with pytest.raises(AmoBlocked):
        await amo.search_contacts("7771112233")
    with pytest.raises(AmoBlocked) as held:
        await amo.search_contacts("7771112233")

    assert 0 < held.value.retry_after <= 2
    assert arrivals(control) == 1


def new_lead(api: httpx.Client) -> int:
    created = api.post("/leads", json=[{"name": "Удалят"}]).raise_for_status()
    return int(created.json()["_embedded"]["leads"][0]["id"])


def delete_lead(control: httpx.Client, lead_id: int) -> None:
    control.delete(f"/leads/{lead_id}").raise_for_status()


def seed_namesakes(control: httpx.Client, phone: str, count: int, page_size: int) -> None:
    values = [{"field_code": "PHONE", "values": [{"value": phone}]}]
    people = [{"name": f"Дубль {n}", "custom_fields_values": values} for n in range(count)]
    control.post("/contacts", json=people).raise_for_status()
    control.post("/faults", json={"page_size": page_size}).raise_for_status()


async def test_a_deleted_lead_reads_as_none_not_a_crash(
    amo: AmoClient, control: httpx.Client, api: httpx.Client
) -> None:
    lead_id = new_lead(api)
    assert (await amo.get_lead_with_contacts(lead_id) or {}).get("id") == lead_id
    delete_lead(control, lead_id)

    assert await amo.get_lead_with_contacts(lead_id) is None  # amoCRM answers 204
    assert await amo.get_leads([lead_id]) == ([], None)


async def test_lists_are_read_page_by_page_through_links_next(
    amo: AmoClient, control: httpx.Client
) -> None:
    seed_namesakes(control, "+77015550000", count=3, page_size=2)

    first, following = await amo.search_contacts("7015550000")
    assert len(first) == 2 and following is not None and "page=2" in following
    assert following.startswith("/api/v4/contacts?")
    second, last = await amo.search_contacts("7015550000", following)
    assert len(second) == 1 and last is None
    assert {c.id for c in first}.isdisjoint(c.id for c in second)


async def test_a_lone_surrogate_amocrm_echoes_is_read_as_replacement(
    amo: AmoClient, api: httpx.Client
) -> None:
    """amoCRM stores and echoes what it was given, `"\\ud83d"` too; a str holding it could
    be neither a Temporal payload nor a request body (httpx writes JSON as UTF-8)."""
    contact = {
        "name": "Ержан \ud83d",
        "custom_fields_values": [
            {"field_code": "PHONE", "values": [{"value": "+77015550101 \udc00"}]}
        ],
    }
    assert "\\ud83d" in escaped_contact_answer(api, contact, "77015550101")

    [found], _ = await amo.search_contacts("77015550101")
    assert found.name == "Ержан \ufffd"
    assert found.phones == ["+77015550101 \ufffd"]


def escaped_contact_answer(api: httpx.Client, contact: dict[str, object], query: str) -> str:
    """Stores the contact, posted as ASCII JSON with any surrogate escaped; how amoCRM
    then answers a search for it."""
    created = api.post(
        "/contacts",
        content=json.dumps([contact]).encode(),
        headers={"Content-Type": "application/json"},
    )
    created.raise_for_status()
    return api.get("/contacts", params={"query": query}).raise_for_status().text
