"""Typed views of the amoCRM v4 entities leadrelay reads and writes.

They are plain dataclasses so they can cross Temporal activity boundaries as JSON.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from leadrelay.custom_fields import CustomField, EnumOption, FieldValue

CLOSED_STATUS_IDS = frozenset({142, 143})
"""Won and lost exist in every pipeline; a lead in either is closed."""


@dataclass
class MultitextValue:
    """One phone or email of a contact, with its kind (MOB, WORK ...)."""

    value: str
    enum_code: str | None = None


@dataclass
class Contact:
    id: int
    name: str
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    lead_ids: list[int] = field(default_factory=list)
    responsible_user_id: int | None = None
    phone_values: list[MultitextValue] = field(default_factory=list)


@dataclass
class Lead:
    id: int
    name: str
    status_id: int
    pipeline_id: int
    tags: list[str] = field(default_factory=list)
    filled_field_ids: list[int] = field(default_factory=list)
    responsible_user_id: int | None = None

    @property
    def is_open(self) -> bool:
        return self.status_id not in CLOSED_STATUS_IDS


@dataclass
class NewContact:
    name: str | None
    phone: str | None
    email: str | None
    custom_fields: list[FieldValue] = field(default_factory=list)
    responsible_user_id: int | None = None


@dataclass
class NewLead:
    """One `leads/complex` item: a lead with either a new or an existing contact."""

    name: str
    pipeline_id: int | None
    status_id: int | None
    tags: list[str]
    contact_id: int | None = None
    new_contact: NewContact | None = None
    request_id: str | None = None
    custom_fields: list[FieldValue] = field(default_factory=list)
    price: int | None = None
    responsible_user_id: int | None = None


@dataclass
class LeadChange:
    """One PATCH of a lead: tags to add and field values to set, together."""

    lead_id: int
    tags_to_add: list[str] = field(default_factory=list)
    custom_fields: list[FieldValue] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.tags_to_add:
            body["tags_to_add"] = [{"name": tag} for tag in self.tags_to_add]
        if self.custom_fields:
            body["custom_fields_values"] = [value.as_json() for value in self.custom_fields]
        return body


@dataclass
class Pipeline:
    id: int
    name: str
    is_main: bool
    status_ids: list[int]


@dataclass
class AccountUser:
    id: int
    name: str


@dataclass
class Rejection:
    """What of a write amoCRM refused, when it was only optional parts: fields, a manager."""

    lead_field_ids: list[int] = field(default_factory=list)
    contact_field_ids: list[int] = field(default_factory=list)
    responsible_user: bool = False


@dataclass
class CreatedLead:
    lead_id: int
    contact_id: int | None
    merged: bool
    request_id: str | None = None


@dataclass
class NewNote:
    """One item of `POST /api/v4/leads/notes`: a common note on a lead."""

    lead_id: int
    text: str
    request_id: str | None = None


@dataclass
class CreatedNote:
    note_id: int
    lead_id: int
    request_id: str | None


def _field_values(raw: dict[str, Any], code: str) -> list[str]:
    values: list[str] = []
    for custom_field in raw.get("custom_fields_values") or []:
        if custom_field.get("field_code") == code:
            values.extend(str(v.get("value", "")) for v in custom_field.get("values") or [])
    return values


def _multitext_values(raw: dict[str, Any], code: str) -> list[MultitextValue]:
    return [
        # Some amoCRM docs name the kind `enum`, others `enum_code`.
        MultitextValue(str(value.get("value", "")), value.get("enum_code") or value.get("enum"))
        for custom_field in raw.get("custom_fields_values") or []
        if custom_field.get("field_code") == code
        for value in custom_field.get("values") or []
    ]


def _optional_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def parse_contact(raw: dict[str, Any]) -> Contact:
    embedded = raw.get("_embedded") or {}
    return Contact(
        id=int(raw["id"]),
        name=str(raw.get("name") or ""),
        phones=_field_values(raw, "PHONE"),
        emails=_field_values(raw, "EMAIL"),
        lead_ids=[int(stub["id"]) for stub in embedded.get("leads") or []],
        responsible_user_id=_optional_int(raw.get("responsible_user_id")),
        phone_values=_multitext_values(raw, "PHONE"),
    )


def parse_lead(raw: dict[str, Any]) -> Lead:
    embedded = raw.get("_embedded") or {}
    return Lead(
        id=int(raw["id"]),
        name=str(raw.get("name") or ""),
        status_id=int(raw["status_id"]),
        pipeline_id=int(raw["pipeline_id"]),
        tags=[str(tag["name"]) for tag in embedded.get("tags") or []],
        filled_field_ids=[
            int(custom_field["field_id"])
            for custom_field in raw.get("custom_fields_values") or []
            if custom_field.get("field_id") is not None and custom_field.get("values")
        ],
        responsible_user_id=_optional_int(raw.get("responsible_user_id")),
    )


def parse_custom_field(raw: dict[str, Any]) -> CustomField:
    return CustomField(
        id=int(raw["id"]),
        name=str(raw.get("name") or ""),
        type=str(raw.get("type") or ""),
        code=raw.get("code") or None,
        enums=[
            EnumOption(int(option["id"]), str(option.get("value") or ""))
            for option in raw.get("enums") or []
        ],
    )


def parse_pipeline(raw: dict[str, Any]) -> Pipeline:
    statuses = (raw.get("_embedded") or {}).get("statuses") or []
    return Pipeline(
        id=int(raw["id"]),
        name=str(raw.get("name") or ""),
        is_main=bool(raw.get("is_main")),
        status_ids=[int(status["id"]) for status in statuses],
    )


def parse_user(raw: dict[str, Any]) -> AccountUser:
    return AccountUser(id=int(raw["id"]), name=str(raw.get("name") or ""))


def phones_body(phones: Sequence[MultitextValue]) -> dict[str, Any]:
    """A contact PATCH that sets its phones; amoCRM replaces all values of a field it names."""
    values = [
        {"value": phone.value, **({"enum_code": phone.enum_code} if phone.enum_code else {})}
        for phone in phones
    ]
    return {"custom_fields_values": [{"field_code": "PHONE", "values": values}]}


def echoed_request_id(item: dict[str, Any]) -> str | None:
    """amoCRM echoes `request_id` as a string, or in `leads/complex` as a one-item list."""
    echoed = item.get("request_id")
    if isinstance(echoed, list):
        echoed = echoed[0] if echoed else None
    return None if echoed is None else str(echoed)


def note_item(note: NewNote) -> dict[str, Any]:
    item: dict[str, Any] = {
        "entity_id": note.lead_id,
        "note_type": "common",
        "params": {"text": note.text},
    }
    if note.request_id is not None:
        item["request_id"] = note.request_id
    return item


def complex_item(lead: NewLead) -> dict[str, Any]:
    item: dict[str, Any] = {"name": lead.name}
    if lead.pipeline_id is not None:
        item["pipeline_id"] = lead.pipeline_id
    if lead.status_id is not None:
        item["status_id"] = lead.status_id
    if lead.request_id is not None:
        item["request_id"] = lead.request_id
    if lead.price is not None:
        item["price"] = lead.price
    if lead.responsible_user_id is not None:
        item["responsible_user_id"] = lead.responsible_user_id
    if lead.custom_fields:
        item["custom_fields_values"] = [value.as_json() for value in lead.custom_fields]
    embedded: dict[str, Any] = {}
    if lead.contact_id is not None:
        embedded["contacts"] = [{"id": lead.contact_id}]
    elif lead.new_contact is not None:
        embedded["contacts"] = [_contact_body(lead.new_contact)]
    if lead.tags:
        embedded["tags"] = [{"name": tag} for tag in lead.tags]
    if embedded:
        item["_embedded"] = embedded
    return item


def _contact_body(contact: NewContact) -> dict[str, Any]:
    fields: list[dict[str, Any]] = []
    if contact.phone:
        fields.append(
            {"field_code": "PHONE", "values": [{"value": contact.phone, "enum_code": "MOB"}]}
        )
    if contact.email:
        fields.append(
            {"field_code": "EMAIL", "values": [{"value": contact.email, "enum_code": "WORK"}]}
        )
    fields.extend(value.as_json() for value in contact.custom_fields)
    body: dict[str, Any] = {"first_name": contact.name or contact.phone or contact.email or ""}
    if contact.responsible_user_id is not None:
        body["responsible_user_id"] = contact.responsible_user_id
    if fields:
        body["custom_fields_values"] = fields
    return body


# `0.custom_fields_values.2.values.0.enum_id`, `0._embedded.contacts.0.responsible_user_id`:
# the item index comes first in a batch, and is absent from a single PATCH.
_OPTIONAL_PART = re.compile(
    r"^(?:\d+\.)?(?P<contact>_embedded\.contacts\.\d+\.)?"
    r"(?:custom_fields_values\.(?P<index>\d+)|(?P<responsible>responsible_user_id))(?:\.|$)"
)


def rejected_parts(item: dict[str, Any], paths: Sequence[str]) -> Rejection | None:
    """What amoCRM refused in this request body, if every refused path is an optional part:
    a custom field we chose to fill (never PHONE or EMAIL) or a responsible user."""
    if not paths:
        return None
    rejection = Rejection()
    for path in paths:
        match = _OPTIONAL_PART.match(path)
        if match is None:
            return None
        body = item
        if match["contact"]:
            contacts = (item.get("_embedded") or {}).get("contacts") or [{}]
            body = contacts[0]
        if match["responsible"]:
            rejection.responsible_user = True
            continue
        entries = body.get("custom_fields_values") or []
        index = int(match["index"])
        field_id = entries[index].get("field_id") if index < len(entries) else None
        if not isinstance(field_id, int):
            return None
        ids = rejection.contact_field_ids if match["contact"] else rejection.lead_field_ids
        ids.append(field_id)
    return rejection
