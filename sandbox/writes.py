"""Validating and applying amoCRM write requests.

Every item of a batch is read and checked before anything is applied, so a rejected batch leaves
the account untouched, as amoCRM's 400 does.
"""

from dataclasses import dataclass

from fastapi import HTTPException

from sandbox.field_values import merge_field_values, read_field_values, read_responsible_user
from sandbox.item_reader import ItemReader
from sandbox.state import (
    CLOSED_STATUS_IDS,
    DEFAULT_RESPONSIBLE_USER_ID,
    JSON,
    LEAD_ADDED,
    LEAD_STATUS_CHANGED,
    Contact,
    Event,
    Lead,
    Note,
    SandboxAccount,
    Stage,
    Task,
)

NOTE_TYPES = frozenset(
    {
        "common",
        "call_in",
        "call_out",
        "service_message",
        "extended_service_message",
        "message_cashier",
        "sms_in",
        "sms_out",
        "geolocation",
        "attachment",
    }
)

# amoCRM's default task type: "Связаться" (follow up).
FOLLOW_UP_TASK_TYPE_ID = 1

# A tag reference: an existing tag's id, or a name to find or create.
TagRef = int | str


def request_items(body: JSON, max_items: int) -> list[JSON]:
    if not isinstance(body, list) or not body:
        raise HTTPException(400, "Request body must be a non-empty JSON array")
    if len(body) > max_items:
        raise HTTPException(422, f"Limit {max_items} per page")
    return body


def request_id_of(item: JSON, index: int) -> str:
    request_id = item.get("request_id") if isinstance(item, dict) else None
    return str(request_id) if isinstance(request_id, str | int) else str(index)


@dataclass
class ContactDraft:
    name: str
    first_name: str
    last_name: str
    responsible_user_id: int
    custom_fields_values: list[dict[str, JSON]] | None
    tags: list[TagRef]


@dataclass
class ContactChange:
    contact: Contact
    name: str | None
    responsible_user_id: int | None
    custom_fields_values: list[dict[str, JSON]] | None


@dataclass
class LeadDraft:
    name: str | None
    price: int
    responsible_user_id: int
    pipeline_id: int
    status_id: int
    custom_fields_values: list[JSON] | None
    tags: list[TagRef]
    contact_ids: list[int]
    new_contact: ContactDraft | None


@dataclass
class LeadChange:
    lead: Lead
    name: str | None
    price: int | None
    responsible_user_id: int | None
    pipeline_id: int
    status_id: int
    custom_fields_values: list[dict[str, JSON]] | None
    replaced_tags: list[TagRef] | None
    added_tags: list[TagRef]
    deleted_tags: list[TagRef]


@dataclass
class NoteDraft:
    entity_id: int
    note_type: str
    params: dict[str, JSON]


@dataclass
class TaskDraft:
    text: str
    complete_till: int
    entity_id: int
    entity_type: str
    task_type_id: int
    responsible_user_id: int


def read_contact(reader: ItemReader, account: SandboxAccount) -> ContactDraft:
    first_name = reader.optional_str("first_name") or ""
    last_name = reader.optional_str("last_name") or ""
    name = reader.optional_str("name") or " ".join(part for part in (first_name, last_name) if part)
    return ContactDraft(
        name=name,
        first_name=first_name,
        last_name=last_name,
        responsible_user_id=read_responsible_user(reader, account) or DEFAULT_RESPONSIBLE_USER_ID,
        custom_fields_values=read_field_values(reader, account, "contacts"),
        tags=_read_tag_refs(reader.embedded(), "tags", account),
    )


def read_contact_change(
    reader: ItemReader, account: SandboxAccount, contact: Contact
) -> ContactChange:
    return ContactChange(
        contact=contact,
        name=reader.optional_str("name"),
        responsible_user_id=read_responsible_user(reader, account),
        custom_fields_values=read_field_values(reader, account, "contacts"),
    )


def _read_tag_refs(reader: ItemReader, key: str, account: SandboxAccount) -> list[TagRef]:
    refs: list[TagRef] = []
    for index, tag in enumerate(reader.optional_list(key)):
        tag_reader = reader.child(f"{key}.{index}", tag)
        tag_id = tag_reader.optional_int("id")
        if tag_id is None:
            refs.append(tag_reader.required_str("name"))
        elif tag_id in account.tags:
            refs.append(tag_id)
        else:
            raise tag_reader.problem("id", f"Tag {tag_id} does not exist")
    return refs


def read_stage(reader: ItemReader, account: SandboxAccount, lead: Lead | None) -> tuple[int, int]:
    """The (pipeline_id, status_id) an item asks for, defaulted the way amoCRM does."""
    pipeline_id = reader.optional_int("pipeline_id")
    if pipeline_id is not None and pipeline_id not in account.pipelines:
        raise reader.problem("pipeline_id", f"Pipeline {pipeline_id} does not exist")
    if pipeline_id is None:
        pipeline_id = lead.pipeline_id if lead is not None else account.main_pipeline.id
    pipeline = account.pipelines[pipeline_id]
    status_id = reader.optional_int("status_id")
    if status_id is not None and not pipeline.has_status(status_id):
        raise reader.problem("status_id", f"Status {status_id} is not in pipeline {pipeline_id}")
    if status_id is not None:
        return pipeline_id, status_id
    if lead is not None and pipeline.has_status(lead.status_id):
        return pipeline_id, lead.status_id
    return pipeline_id, pipeline.default_status_id()


def read_new_lead(
    reader: ItemReader, account: SandboxAccount, *, with_new_contact: bool
) -> LeadDraft:
    """A lead to create; `with_new_contact`: the /leads/complex flavour, one contact, maybe new."""
    pipeline_id, status_id = read_stage(reader, account, None)
    custom_fields_values = read_field_values(reader, account, "leads")
    embedded = reader.embedded()
    contacts = embedded.optional_list("contacts")
    if with_new_contact and len(contacts) > 1:
        raise embedded.problem("contacts", "At most one contact per lead", "OutOfRange")
    contact_ids: list[int] = []
    new_contact = None
    for index, contact in enumerate(contacts):
        contact_reader = embedded.child(f"contacts.{index}", contact)
        contact_id = contact_reader.optional_int("id")
        if contact_id is None and with_new_contact:
            new_contact = read_contact(contact_reader, account)
        elif contact_id is None:
            raise contact_reader.problem("id", "This field is required", "NotBlank")
        elif contact_id not in account.contacts:
            raise contact_reader.problem("id", f"Contact {contact_id} does not exist")
        else:
            contact_ids.append(contact_id)
    return LeadDraft(
        name=reader.optional_str("name"),
        price=reader.optional_int("price", minimum=0) or 0,
        responsible_user_id=read_responsible_user(reader, account) or DEFAULT_RESPONSIBLE_USER_ID,
        pipeline_id=pipeline_id,
        status_id=status_id,
        custom_fields_values=custom_fields_values,
        tags=_read_tag_refs(embedded, "tags", account),
        contact_ids=contact_ids,
        new_contact=new_contact,
    )


def read_lead_change(reader: ItemReader, account: SandboxAccount, lead: Lead) -> LeadChange:
    pipeline_id, status_id = read_stage(reader, account, lead)
    embedded = reader.embedded()
    return LeadChange(
        lead=lead,
        name=reader.optional_str("name"),
        price=reader.optional_int("price", minimum=0),
        responsible_user_id=read_responsible_user(reader, account),
        pipeline_id=pipeline_id,
        status_id=status_id,
        custom_fields_values=read_field_values(reader, account, "leads"),
        replaced_tags=_read_tag_refs(embedded, "tags", account) if embedded.has("tags") else None,
        added_tags=_read_tag_refs(reader, "tags_to_add", account),
        deleted_tags=_read_tag_refs(reader, "tags_to_delete", account),
    )


def read_note(reader: ItemReader, account: SandboxAccount, entity_id: int | None) -> NoteDraft:
    """A lead note; `entity_id` comes from the URL for /leads/{id}/notes, else from the item."""
    if entity_id is None:
        entity_id = reader.optional_int("entity_id")
        if entity_id is None or entity_id not in account.leads:
            raise reader.problem("entity_id", f"Lead {entity_id} does not exist")
    note_type = reader.required_str("note_type")
    if note_type not in NOTE_TYPES:
        raise reader.problem("note_type", f"Unknown note_type {note_type!r}")
    params = reader.data.get("params") or {}
    if not isinstance(params, dict):
        raise reader.problem("params", "Must be an object", "InvalidType")
    return NoteDraft(entity_id, note_type, params)


def read_task(reader: ItemReader, account: SandboxAccount) -> TaskDraft:
    entity_type = reader.required_str("entity_type")
    entities = {"leads": account.leads, "contacts": account.contacts}.get(entity_type)
    if entities is None:
        raise reader.problem("entity_type", f"Unknown entity_type {entity_type!r}")
    entity_id = reader.optional_int("entity_id")
    if entity_id is None or entity_id not in entities:
        raise reader.problem("entity_id", f"Entity {entity_id} of {entity_type} does not exist")
    return TaskDraft(
        text=reader.required_str("text"),
        complete_till=reader.required_int("complete_till"),
        entity_id=entity_id,
        entity_type=entity_type,
        task_type_id=reader.optional_int("task_type_id") or FOLLOW_UP_TASK_TYPE_ID,
        responsible_user_id=read_responsible_user(reader, account) or DEFAULT_RESPONSIBLE_USER_ID,
    )


def add_contact(account: SandboxAccount, draft: ContactDraft, now: int) -> Contact:
    contact = Contact(
        id=account.next_contact_id(),
        name=draft.name,
        first_name=draft.first_name,
        last_name=draft.last_name,
        responsible_user_id=draft.responsible_user_id,
        created_at=now,
        updated_at=now,
        custom_fields_values=draft.custom_fields_values,
        tag_ids=_resolve_tags(account, draft.tags),
    )
    account.contacts[contact.id] = contact
    return contact


def add_lead(account: SandboxAccount, draft: LeadDraft, now: int) -> Lead:
    contact_ids = list(draft.contact_ids)
    if draft.new_contact is not None:
        contact_ids.append(add_contact(account, draft.new_contact, now).id)
    lead_id = account.next_lead_id()
    lead = Lead(
        id=lead_id,
        name=draft.name if draft.name is not None else f"Сделка #{lead_id}",
        price=draft.price,
        responsible_user_id=draft.responsible_user_id,
        pipeline_id=draft.pipeline_id,
        status_id=draft.status_id,
        created_at=now,
        updated_at=now,
        closed_at=now if draft.status_id in CLOSED_STATUS_IDS else None,
        custom_fields_values=draft.custom_fields_values,
        tag_ids=_resolve_tags(account, draft.tags),
        contact_ids=contact_ids,
    )
    account.leads[lead.id] = lead
    for contact_id in contact_ids:
        account.contacts[contact_id].lead_ids.append(lead.id)
    account.record_event(LEAD_ADDED, lead, None, Stage(lead.pipeline_id, lead.status_id))
    return lead


def change_lead(account: SandboxAccount, change: LeadChange, now: int) -> Event | None:
    """Apply a change; the stage move it made, if any, as its lead_status_changed event."""
    lead = change.lead
    if change.name is not None:
        lead.name = change.name
    if change.price is not None:
        lead.price = change.price
    if change.responsible_user_id is not None:
        lead.responsible_user_id = change.responsible_user_id
    if change.custom_fields_values is not None:
        lead.custom_fields_values = merge_field_values(
            lead.custom_fields_values, change.custom_fields_values
        )
    if change.replaced_tags is not None:
        lead.tag_ids = _resolve_tags(account, change.replaced_tags)
    for tag_id in _resolve_tags(account, change.added_tags):
        if tag_id not in lead.tag_ids:
            lead.tag_ids.append(tag_id)
    deleted = set(_resolve_tags(account, change.deleted_tags))
    lead.tag_ids = [tag_id for tag_id in lead.tag_ids if tag_id not in deleted]
    return move_lead(account, lead, change.pipeline_id, change.status_id, now)


def change_contact(change: ContactChange, now: int) -> None:
    contact = change.contact
    if change.name is not None:
        contact.name = change.name
    if change.responsible_user_id is not None:
        contact.responsible_user_id = change.responsible_user_id
    if change.custom_fields_values is not None:
        contact.custom_fields_values = merge_field_values(
            contact.custom_fields_values, change.custom_fields_values
        )
    contact.updated_at = max(now, contact.updated_at + 1)


def move_lead(
    account: SandboxAccount, lead: Lead, pipeline_id: int, status_id: int, now: int
) -> Event | None:
    """Put a lead in a stage; `updated_at` always moves forward so `updated_at` filters see it.

    A real move is logged as a lead_status_changed event stamped with the new `updated_at`."""
    before = Stage(lead.pipeline_id, lead.status_id)
    after = Stage(pipeline_id, status_id)
    if status_id not in CLOSED_STATUS_IDS:
        lead.closed_at = None
    elif lead.status_id != status_id or lead.closed_at is None:
        lead.closed_at = now
    lead.pipeline_id = pipeline_id
    lead.status_id = status_id
    lead.updated_at = max(now, lead.updated_at + 1)
    if after == before:
        return None
    return account.record_event(LEAD_STATUS_CHANGED, lead, before, after)


def add_note(account: SandboxAccount, draft: NoteDraft, now: int) -> Note:
    note = Note(account.next_note_id(), draft.entity_id, draft.note_type, draft.params, now, now)
    account.notes[note.id] = note
    return note


def add_task(account: SandboxAccount, draft: TaskDraft, now: int) -> Task:
    task = Task(
        id=account.next_task_id(),
        text=draft.text,
        complete_till=draft.complete_till,
        entity_id=draft.entity_id,
        entity_type=draft.entity_type,
        task_type_id=draft.task_type_id,
        responsible_user_id=draft.responsible_user_id,
        created_at=now,
        updated_at=now,
    )
    account.tasks[task.id] = task
    return task


def _resolve_tags(account: SandboxAccount, refs: list[TagRef]) -> list[int]:
    tag_ids: list[int] = []
    for ref in refs:
        tag_id = ref if isinstance(ref, int) else account.tag_named(ref).id
        if tag_id not in tag_ids:
            tag_ids.append(tag_id)
    return tag_ids
