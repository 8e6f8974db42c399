"""What the forms file may refer to in the account: pipelines, field catalogues and users.

Four requests in all (one more per further page of 250 fields or users), sent directly
through the client's pacer, not the amoCRM task queue: `check-forms` uses it. The worker's
start-up check reads the same on the queue (workflows/account_check.py).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

from amocrm.client import AmoClient
from leadrelay.custom_fields import CustomField, FieldEntity
from leadrelay.forms_check import AccountFacts

T = TypeVar("T")


async def read_account_facts(client: AmoClient) -> AccountFacts:
    pipelines = await client.pipelines()
    fields: dict[FieldEntity, dict[int, CustomField]] = {}
    entities: tuple[FieldEntity, ...] = ("leads", "contacts")
    for entity in entities:
        catalogue = await all_pages(functools.partial(client.custom_fields_page, entity))
        fields[entity] = {custom_field.id: custom_field for custom_field in catalogue}
    users = await all_pages(client.users_page)
    return AccountFacts(
        statuses={pipeline.id: set(pipeline.status_ids) for pipeline in pipelines},
        fields=fields,
        user_ids={user.id for user in users},
    )


async def all_pages(read: Callable[[int], Awaitable[tuple[list[T], bool]]]) -> list[T]:
    """Every item of a paged list; `read(page)` gives a page and whether more follow."""
    items: list[T] = []
    page, more = 1, True
    while more:
        found, more = await read(page)
        items.extend(found)
        page += 1
    return items
