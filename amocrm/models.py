"""Typed views of the amoCRM v4 entities leadrelay reads and writes.

They are plain dataclasses so they can cross Temporal activity boundaries as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CLOSED_STATUS_IDS = frozenset({142, 143})
"""Won and lost exist in every pipeline; a lead in either is closed."""


@dataclass
class Contact:
    id: int
    name: str
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    lead_ids: list[int] = field(default_factory=list)


@dataclass
class Lead:
    id: int
    name: str
    status_id: int
    pipeline_id: int
    tags: list[str] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status_id not in CLOSED_STATUS_IDS


@dataclass
class NewContact:
    name: str | None
    phone: str | None
    email: str | None


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


@dataclass
class CreatedLead:
    lead_id: int
    contact_id: int | None
    merged: bool


def _field_values(raw: dict[str, Any], code: str) -> list[str]:
    values: list[str] = []
    for custom_field in raw.get("custom_fields_values") or []:
        if custom_field.get("field_code") == code:
            values.extend(str(v.get("value", "")) for v in custom_field.get("values") or [])
    return values


def parse_contact(raw: dict[str, Any]) -> Contact:
    embedded = raw.get("_embedded") or {}
    return Contact(
        id=int(raw["id"]),
        name=str(raw.get("name") or ""),
        phones=_field_values(raw, "PHONE"),
        emails=_field_values(raw, "EMAIL"),
        lead_ids=[int(stub["id"]) for stub in embedded.get("leads") or []],
    )


def parse_lead(raw: dict[str, Any]) -> Lead:
    embedded = raw.get("_embedded") or {}
    return Lead(
        id=int(raw["id"]),
        name=str(raw.get("name") or ""),
        status_id=int(raw["status_id"]),
        pipeline_id=int(raw["pipeline_id"]),
        tags=[str(tag["name"]) for tag in embedded.get("tags") or []],
    )


def complex_item(lead: NewLead) -> dict[str, Any]:
    item: dict[str, Any] = {"name": lead.name}
    if lead.pipeline_id is not None:
        item["pipeline_id"] = lead.pipeline_id
    if lead.status_id is not None:
        item["status_id"] = lead.status_id
    if lead.request_id is not None:
        item["request_id"] = lead.request_id
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
    body: dict[str, Any] = {"first_name": contact.name or contact.phone or contact.email or ""}
    if fields:
        body["custom_fields_values"] = fields
    return body
