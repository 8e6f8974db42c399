"""The amoCRM v4 endpoints leadrelay uses, answering as amoCRM does."""

import functools
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from sandbox.item_reader import ItemReader
from sandbox.queries import MAX_PAGE_SIZE, EventQuery, LeadQuery, Paging, contact_matches
from sandbox.render import (
    Body,
    contact_json,
    custom_field_json,
    event_json,
    lead_json,
    links,
    note_json,
    pipeline_json,
    task_json,
    user_json,
)
from sandbox.responses import HalJSONResponse, ValidationProblem
from sandbox.state import JSON, Lead, SandboxAccount, unix_now
from sandbox.status_webhooks import announce_notes, announce_status_changes
from sandbox.writes import (
    add_contact,
    add_lead,
    add_note,
    add_task,
    change_contact,
    change_lead,
    read_contact,
    read_contact_change,
    read_lead_change,
    read_new_lead,
    read_note,
    read_task,
    request_id_of,
    request_items,
)

T = TypeVar("T")
Draft = TypeVar("Draft")

MAX_BATCH = 250
MAX_COMPLEX_BATCH = 50
MAX_EVENTS_PAGE = 100

router = APIRouter(prefix="/api/v4")


async def get_account(request: Request) -> SandboxAccount:
    return request.app.state.account


async def read_json_body(request: Request) -> JSON:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise HTTPException(400, "Malformed JSON body") from None


async def get_base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# Handlers are all `async def`: they then run one at a time on the event loop, which is what
# keeps the account consistent without locks.
Account = Annotated[SandboxAccount, Depends(get_account)]
JsonBody = Annotated[JSON, Depends(read_json_body)]
BaseUrl = Annotated[str, Depends(get_base_url)]


def _wants(request: Request, relation: str) -> bool:
    return relation in request.query_params.get("with", "").split(",")


def _list_page(
    request: Request,
    base: str,
    key: str,
    items: Sequence[T],
    render: Callable[[T], Body],
    max_limit: int = MAX_PAGE_SIZE,
) -> Response:
    paging = Paging.read(request.query_params, max_limit, _account_of(request).faults.page_size)
    page_items, has_next = paging.slice(items)
    if not page_items:
        # amoCRM answers an empty list with 204 and no body at all, not with [].
        return Response(status_code=204)
    page_links = paging.links(base, request.url.path, request.query_params, has_next=has_next)
    return HalJSONResponse(
        {
            "_page": paging.page,
            "_links": page_links,
            "_embedded": {key: [render(item) for item in page_items]},
        }
    )


def _account_of(request: Request) -> SandboxAccount:
    account: SandboxAccount = request.app.state.account
    return account


def _lead_or_404(account: SandboxAccount, lead_id: int) -> Lead:
    lead = account.leads.get(lead_id)
    if lead is None:
        raise HTTPException(404, f"Lead {lead_id} not found")
    return lead


def _created(base: str, path: str, key: str, rows: list[tuple[int, str]]) -> Response:
    return HalJSONResponse(
        {
            "_links": links(f"{base}{path}"),
            "_embedded": {
                key: [
                    {
                        "id": entity_id,
                        "request_id": request_id,
                        "_links": links(f"{base}{path}/{entity_id}"),
                    }
                    for entity_id, request_id in rows
                ]
            },
        }
    )


@router.get("/contacts")
async def list_contacts(request: Request, account: Account, base: BaseUrl) -> Response:
    query = request.query_params.get("query", "")
    found = [
        contact
        for contact in account.contacts.values()
        if not query or contact_matches(contact, query)
    ]
    with_leads = _wants(request, "leads")
    return _list_page(
        request,
        base,
        "contacts",
        found,
        lambda contact: contact_json(contact, account, base, with_leads=with_leads),
    )


@router.get("/contacts/{contact_id:int}")
async def get_contact(
    contact_id: int, request: Request, account: Account, base: BaseUrl
) -> Response:
    contact = account.contacts.get(contact_id)
    if contact is None:
        raise HTTPException(404, f"Contact {contact_id} not found")
    with_leads = _wants(request, "leads")
    return HalJSONResponse(contact_json(contact, account, base, with_leads=with_leads))


@router.post("/contacts")
async def create_contacts(body: JsonBody, account: Account, base: BaseUrl) -> Response:
    return _create_batch(body, account, base, read_contact, add_contact, "contacts")


@router.patch("/contacts/{contact_id:int}")
async def update_contact(
    contact_id: int, body: JsonBody, account: Account, base: BaseUrl
) -> Response:
    contact = account.contacts.get(contact_id)
    if contact is None:
        raise HTTPException(404, f"Contact {contact_id} not found")
    change_contact(read_contact_change(ItemReader(body, "0"), account, contact), unix_now())
    return HalJSONResponse(
        {
            "id": contact.id,
            "updated_at": contact.updated_at,
            "_links": links(f"{base}/api/v4/contacts/{contact.id}"),
        }
    )


@router.get("/leads/custom_fields")
async def list_lead_fields(request: Request, account: Account, base: BaseUrl) -> Response:
    return _list_fields(request, account, base, "leads")


@router.get("/contacts/custom_fields")
async def list_contact_fields(request: Request, account: Account, base: BaseUrl) -> Response:
    return _list_fields(request, account, base, "contacts")


def _list_fields(request: Request, account: SandboxAccount, base: str, entity: str) -> Response:
    fields = sorted(account.custom_fields[entity], key=lambda custom_field: custom_field.sort)
    return _list_page(
        request,
        base,
        "custom_fields",
        fields,
        lambda custom_field: custom_field_json(custom_field, entity, base),
    )


@router.get("/users")
async def list_users(request: Request, account: Account, base: BaseUrl) -> Response:
    users = sorted(account.users.values(), key=lambda user: user.id)
    return _list_page(request, base, "users", users, lambda user: user_json(user, base))


@router.get("/leads")
async def list_leads(request: Request, account: Account, base: BaseUrl) -> Response:
    leads = LeadQuery.read(request.query_params).select(list(account.leads.values()))
    with_contacts = _wants(request, "contacts")
    return _list_page(
        request,
        base,
        "leads",
        leads,
        lambda lead: lead_json(lead, account, base, with_contacts=with_contacts),
    )


@router.get("/leads/{lead_id:int}")
async def get_lead(lead_id: int, request: Request, account: Account, base: BaseUrl) -> Response:
    if lead_id in account.deleted_lead_ids:
        # amoCRM answers a deleted lead with 204 and no body, not with 404.
        return Response(status_code=204)
    lead = _lead_or_404(account, lead_id)
    with_contacts = _wants(request, "contacts")
    return HalJSONResponse(lead_json(lead, account, base, with_contacts=with_contacts))


@router.post("/leads")
async def create_leads(body: JsonBody, account: Account, base: BaseUrl) -> Response:
    read_lead = functools.partial(read_new_lead, with_new_contact=False)
    return _create_batch(body, account, base, read_lead, add_lead, "leads")


@router.post("/leads/complex")
async def create_leads_complex(body: JsonBody, account: Account) -> Response:
    items = request_items(body, MAX_COMPLEX_BATCH)
    request_ids = [request_id_of(item, index) for index, item in enumerate(items)]
    drafts = [
        read_new_lead(ItemReader(item, request_id, str(index)), account, with_new_contact=True)
        for index, (item, request_id) in enumerate(zip(items, request_ids, strict=True))
    ]
    now = unix_now()
    created = [add_lead(account, draft, now) for draft in drafts]
    # Unlike every other write, /leads/complex answers with a bare array.
    return HalJSONResponse(
        [
            {
                "id": lead.id,
                "contact_id": lead.contact_ids[0] if lead.contact_ids else None,
                "company_id": None,
                "request_id": [request_id],
                "merged": False,
            }
            for lead, request_id in zip(created, request_ids, strict=True)
        ]
    )


@router.patch("/leads/{lead_id:int}")
async def update_lead(lead_id: int, body: JsonBody, account: Account, base: BaseUrl) -> Response:
    lead = _lead_or_404(account, lead_id)
    change = read_lead_change(ItemReader(body, "0"), account, lead)
    announce_status_changes(account, [change_lead(account, change, unix_now())])
    return HalJSONResponse(
        {
            "id": lead.id,
            "updated_at": lead.updated_at,
            "_links": links(f"{base}/api/v4/leads/{lead.id}"),
        }
    )


@router.patch("/leads")
async def update_leads(body: JsonBody, account: Account, base: BaseUrl) -> Response:
    items = request_items(body, MAX_BATCH)
    request_ids = [request_id_of(item, index) for index, item in enumerate(items)]
    changes = []
    for item, request_id in zip(items, request_ids, strict=True):
        reader = ItemReader(item, request_id)
        lead_id = reader.optional_int("id")
        lead = account.leads.get(lead_id) if lead_id is not None else None
        if lead is None:
            raise reader.problem("id", f"Lead {lead_id} does not exist")
        changes.append(read_lead_change(reader, account, lead))
    now = unix_now()
    announce_status_changes(account, [change_lead(account, change, now) for change in changes])
    leads = [change.lead for change in changes]
    return HalJSONResponse(
        {
            "_links": links(f"{base}/api/v4/leads"),
            "_embedded": {
                "leads": [
                    {
                        "id": lead.id,
                        "updated_at": lead.updated_at,
                        "request_id": request_id,
                        "_links": links(f"{base}/api/v4/leads/{lead.id}"),
                    }
                    for lead, request_id in zip(leads, request_ids, strict=True)
                ]
            },
        }
    )


async def _create_notes(
    body: JSON, account: SandboxAccount, base: str, lead_id: int | None
) -> Response:
    items = request_items(body, MAX_BATCH)
    request_ids = [request_id_of(item, index) for index, item in enumerate(items)]
    drafts = [
        read_note(ItemReader(item, request_id), account, lead_id)
        for item, request_id in zip(items, request_ids, strict=True)
    ]
    now = unix_now()
    notes = [add_note(account, draft, now) for draft in drafts]
    announce_notes(account, notes)
    return HalJSONResponse(
        {
            "_links": links(f"{base}/api/v4/leads/notes"),
            "_embedded": {
                "notes": [
                    {
                        "id": note.id,
                        "entity_id": note.entity_id,
                        "request_id": request_id,
                        "_links": links(f"{base}/api/v4/leads/{note.entity_id}/notes/{note.id}"),
                    }
                    for note, request_id in zip(notes, request_ids, strict=True)
                ]
            },
        }
    )


@router.post("/leads/notes")
async def create_notes(body: JsonBody, account: Account, base: BaseUrl) -> Response:
    return await _create_notes(body, account, base, None)


@router.post("/leads/{lead_id:int}/notes")
async def create_lead_notes(
    lead_id: int, body: JsonBody, account: Account, base: BaseUrl
) -> Response:
    if lead_id not in account.leads:
        raise ValidationProblem("0", "entity_id", f"Lead {lead_id} does not exist")
    return await _create_notes(body, account, base, lead_id)


@router.get("/leads/{lead_id:int}/notes")
async def list_lead_notes(
    lead_id: int, request: Request, account: Account, base: BaseUrl
) -> Response:
    _lead_or_404(account, lead_id)
    notes = account.notes_of_lead(lead_id)
    return _list_page(request, base, "notes", notes, lambda note: note_json(note, base))


@router.get("/leads/pipelines")
async def list_pipelines(account: Account, base: BaseUrl) -> Response:
    pipelines = sorted(account.pipelines.values(), key=lambda pipeline: pipeline.sort)
    return HalJSONResponse(
        {
            "_total_items": len(pipelines),
            "_links": links(f"{base}/api/v4/leads/pipelines"),
            "_embedded": {"pipelines": [pipeline_json(pipeline, base) for pipeline in pipelines]},
        }
    )


@router.get("/leads/pipelines/{pipeline_id:int}")
async def get_pipeline(pipeline_id: int, account: Account, base: BaseUrl) -> Response:
    pipeline = account.pipelines.get(pipeline_id)
    if pipeline is None:
        raise HTTPException(404, f"Pipeline {pipeline_id} not found")
    return HalJSONResponse(pipeline_json(pipeline, base))


@router.get("/events")
async def list_events(request: Request, account: Account, base: BaseUrl) -> Response:
    events = EventQuery.read(request.query_params).select(account.events)
    return _list_page(
        request, base, "events", events, lambda event: event_json(event, base), MAX_EVENTS_PAGE
    )


@router.get("/tasks")
async def list_tasks(request: Request, account: Account, base: BaseUrl) -> Response:
    """`filter[entity_type]`, `filter[entity_id]` (or `filter[entity_id][]`, repeated) and
    `order[id]=asc|desc`, as amoCRM takes them; other filters are not supported."""
    params = request.query_params
    entity_type = params.get("filter[entity_type]")
    entity_ids = {
        int(value)
        for key in ("filter[entity_id]", "filter[entity_id][]")
        for value in params.getlist(key)
        if value.isdigit()
    }
    tasks = [
        task
        for task in account.tasks.values()
        if (entity_type is None or task.entity_type == entity_type)
        and (not entity_ids or task.entity_id in entity_ids)
    ]
    tasks.sort(key=lambda task: task.id, reverse=params.get("order[id]") == "desc")
    return _list_page(request, base, "tasks", tasks, lambda task: task_json(task, base))


@router.post("/tasks")
async def create_tasks(body: JsonBody, account: Account, base: BaseUrl) -> Response:
    return _create_batch(body, account, base, read_task, add_task, "tasks")


def _create_batch(
    body: Any,
    account: SandboxAccount,
    base: str,
    read: Callable[[ItemReader, SandboxAccount], Draft],
    add: Callable[[SandboxAccount, Draft, int], Any],
    entities: str,
) -> Response:
    """Every item is checked before any is added, as amoCRM rejects a batch whole."""
    items = request_items(body, MAX_BATCH)
    request_ids = [request_id_of(item, index) for index, item in enumerate(items)]
    drafts = [
        read(ItemReader(item, request_id), account)
        for item, request_id in zip(items, request_ids, strict=True)
    ]
    now = unix_now()
    rows = [
        (add(account, draft, now).id, request_id)
        for draft, request_id in zip(drafts, request_ids, strict=True)
    ]
    return _created(base, f"/api/v4/{entities}", entities, rows)
